"""Settings (leads only): taxonomy, threshold and models, the local tier, the price table in use, API key status,
export, and the audit trail."""

import json
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import state
from dashboard.sections import alerts as alert_sections
from dashboard.sections import fewshot as fewshot_sections
from dashboard.sections import operator_name
from dashboard.sections import teams as team_sections
from dashboard.ui import gate, need_operator, plain
from triage import audit, export, privacy
from triage import settings as config
from triage.access import Action
from triage.local import retrieval as fewshot_source
from triage.quality import calibrate, tiles
from triage.routing.calibration import MIN_EACH, MIN_LABELS
from triage.spend.pricing import PriceTable
from triage.taxonomy import Taxonomy, TaxonomyError, priority_levels
from triage.taxonomy import diff as taxonomy_diff

actor = gate(Action.CONFIGURE)
db = state.database()
settings, taxonomy = state.settings()

st.title("Settings")
operator_name.ask_first("settings changes")  # the name before the first save, not a warning after it

st.subheader("Taxonomy")
st.caption("Categories the models choose from, each with a one-line description the prompt shows them. A "
           "category's key is what is stored and sent to the models (lower-case letters, digits and _; made from "
           "the name when left empty); its name, any characters up to 100, is what people see. Renaming keeps the "
           "key, so a category's history stays with it. Changes apply to tickets classified from now on.")
env_change = config.environment_taxonomy_change(db, settings)
if env_change:
    st.info(f"The environment's taxonomy ({settings.taxonomy_path or 'the built-in default'}) differs from the one "
            f"saved here, which is in force: {env_change.count} difference{'s' if env_change.count != 1 else ''} "
            "(" + "; ".join(plain(line) for line in env_change.lines()[:5])
            + ("; ..." if env_change.count > 5 else "") + ").", icon=":material/info:")
export_cols = st.columns(3)
export_cols[0].download_button("Export taxonomy (JSON)", json.dumps(taxonomy.to_dict(), indent=1, ensure_ascii=False),
                        file_name="taxonomy.json", mime="application/json", key="taxonomy_json")
export_cols[1].download_button("Export taxonomy (CSV)", taxonomy.to_csv(), file_name="taxonomy.csv", mime="text/csv",
                        key="taxonomy_csv")
tax_key = f"taxonomy_editor{st.session_state.get('taxonomy_saves', '') or ''}"  # a new editor after each save
uploaded = st.file_uploader("Import a taxonomy file (JSON, or CSV of name, description and an optional key)",
                            type=["json", "csv"], key=f"{tax_key}_file")
tax_frame = pd.DataFrame([{"key": c.name, "name": c.shown, "description": c.description}
                          for c in taxonomy.categories])
edited = st.data_editor(tax_frame, num_rows="dynamic", key=tax_key, width="stretch",
                        column_config={"key": st.column_config.TextColumn("Key", help="Stored and sent to the "
                                                                          "models; empty: made from the name"),
                                       "name": st.column_config.TextColumn("Name", required=True, max_chars=100),
                                       "description": st.column_config.TextColumn("Description", width="large",
                                                                                  required=True)},
                        disabled=uploaded is not None)
st.caption("Priority scale, most urgent first (2 to 10 levels; names in lower-case letters, digits or _): each "
           "ticket's priority is asked in the same request as its category, from these descriptions.")
scale_frame = pd.DataFrame([{"name": p.name, "description": p.description} for p in taxonomy.priorities])
scale_edited = st.data_editor(scale_frame, num_rows="dynamic", key=f"{tax_key}_scale", width="stretch",
                              column_config={"name": st.column_config.TextColumn("Priority", required=True,
                                                                                 max_chars=40),
                                             "description": st.column_config.TextColumn(
                                                 "Description", width="large", required=True)})
for note in st.session_state.pop("taxonomy_saved", []):
    st.success(note, icon=":material/check:")
proposed, problem = None, None
try:  # checked as it is edited: empty cells are empty (never "nan"), a description is required
    scale = priority_levels(scale_edited.to_dict("records"))
    if uploaded is not None:
        is_csv = uploaded.name.lower().endswith(".csv")
        proposed = Taxonomy.from_file_text(uploaded.getvalue().decode("utf-8-sig"), "csv" if is_csv else "json")
        if is_csv:  # a CSV holds categories only: the scale stays as edited here
            proposed = proposed.with_priorities(scale)
    else:
        proposed = Taxonomy.from_rows(edited.to_dict("records"), scale)
except (TaxonomyError, UnicodeDecodeError) as exc:
    problem = str(exc) if isinstance(exc, TaxonomyError) else "the file is not UTF-8 text"
change = taxonomy_diff(taxonomy, proposed) if proposed else None
if problem:
    st.error(problem[:1].upper() + problem[1:] + ".", icon=":material/error:")
elif change:
    st.markdown("**Before saving** (the prompt changes for tickets classified from now on):\n" + "\n".join(
        [f"- :green[added] **{plain(n)}**: {plain(d)}" for n, d in change.added.items()] +
        [f"- :red[removed] **{plain(n)}** (was: {plain(d)})" for n, d in change.removed.items()] +
        [f"- :blue[renamed] **{plain(n)}**: {plain(old)} → {plain(new)} (its key and history stay)"
         for n, (old, new) in change.renamed.items()] +
        [f"- :orange[changed] **{plain(n)}**: ~~{plain(old)}~~ → {plain(new)}" for n, (old, new) in
         change.changed.items()] +
        ([f"- :orange[priority scale] ~~{plain(', '.join(change.priority_names()[0]))}~~ → "
          f"{plain(', '.join(change.priority_names()[1]))}" + (
              " (levels renamed or removed: tickets keep the priority they were given)"
              if not set(change.priority_names()[0]) <= set(change.priority_names()[1]) else "")]
         if change.priorities else [])))
if st.button(f"Save {change.count} taxonomy change{'s' if change.count != 1 else ''}" if change else
             "Save taxonomy", key="save_taxonomy", disabled=not change, type="primary" if change else "secondary") \
        and proposed is not None and change and need_operator():
    try:
        config.save_taxonomy(db, proposed, actor=actor)
        notes = [f"Saved {len(proposed.names)} categories."]
        notes += [f"New category **{plain(n)}**: Haiku and Sonnet know it from its description from now on; the "
                  f"local model has no labels for it yet. Label some tickets {plain(n)} in the Review queue (or "
                  "import a labelled file on Classify), then **Retrain now** under Local model below."
                  for n in change.added]
        st.session_state["taxonomy_saved"] = notes
        st.session_state["taxonomy_saves"] = int(st.session_state.get("taxonomy_saves") or 0) + 1
        st.rerun()
    except TaxonomyError as exc:
        st.error(str(exc))

st.subheader("Routing")
maps = calibrate.in_force(db)
mapped = maps.get(settings.tier1_model)
st.caption(f"The threshold is compared with {settings.tier1_model}'s calibrated confidence (calibration "
           f"#{mapped.id}, fitted on {mapped.n} operator labels)." if mapped else
           f"The threshold is compared with {settings.tier1_model}'s stated confidence: it has no calibration map "
           f"yet (one is fitted from {MIN_LABELS} operator-labelled answers, at least {MIN_EACH} of them right and "
           f"{MIN_EACH} wrong; see Quality).")
with st.form("engine"):
    threshold = st.slider("Escalate to tier 2 when tier-1 confidence is under", 0.0, 1.0,
                          float(settings.threshold), 0.05,
                          help="Compared with the model's stated confidence until the model has a calibration map "
                               f"({MIN_LABELS} operator labels, see Quality), then with its calibrated confidence: "
                               "the observed chance of being right at that level.")
    c1, c2 = st.columns(2)
    tier1 = c1.text_input("Tier 1 model", settings.tier1_model)
    tier2 = c2.text_input("Tier 2 model", settings.tier2_model)
    b1, b2 = st.columns(2)
    budget = b1.number_input("Monthly budget (USD, 0 = none)", min_value=0.0, value=float(settings.monthly_budget_usd),
                             step=10.0, help="API calls pause once this month's exact spend reaches it; the local "
                             "model keeps working.")
    daily = b2.number_input("Daily budget (USD, 0 = none)", min_value=0.0, value=float(settings.daily_budget_usd),
                            step=1.0, help="The same for today's spend (UTC days).")
    p1, p2 = st.columns(2)
    per_call = p1.number_input("Tickets per call", min_value=1, max_value=50, value=int(settings.per_call), step=1,
                               help="How many tickets one Haiku request carries. 1 sends one request per ticket. "
                               "More pays the instructions once per request and gets far more tickets through a "
                               "requests-per-minute limit; each answer is matched to its ticket by id and a ticket "
                               "without a clean answer is asked again alone. Check accuracy by group size on the "
                               "Quality page.")
    per_call_sonnet = p2.number_input("Tickets per Sonnet call (0 = the same)", min_value=0, max_value=50,
                                      value=int(settings.per_call_sonnet or 0), step=1,
                                      help="The same for tier-2 requests (escalations).")
    a1, a2 = st.columns(2)
    audit_pct = a1.number_input("Blind audit rate (% of tickets settled without review)", min_value=0.0,
                                max_value=100.0, value=float(settings.audit_rate) * 100, step=0.5, key="audit_rate",
                                help="That share of the tickets that settle without review is drawn at random as "
                                "they settle and waits on the Audit page, to be labelled without seeing the model's "
                                "answer: the accuracy of the traffic nobody reviewed (Quality page). 0 = off.")
    max_reviews = a2.number_input("Reviews a day the team can do (0 = no limit)", min_value=0,
                                  value=int(settings.max_reviews_per_day), step=10, key="max_reviews_per_day",
                                  help="The threshold recommendation (Quality page) keeps the reviews a day it "
                                  "would cause under this.")
    if st.form_submit_button("Save routing") and need_operator():
        try:
            config.save_engine(db, actor=actor, threshold=threshold, tier1_model=tier1.strip(),
                               tier2_model=tier2.strip(), monthly_budget_usd=budget, daily_budget_usd=daily,
                               per_call=int(per_call), per_call_sonnet=int(per_call_sonnet) or None,
                               audit_rate=round(float(audit_pct) / 100, 6), max_reviews_per_day=int(max_reviews))
            st.success("Saved. New tickets use these settings.")
        except ValueError as exc:
            st.error(str(exc))

fewshot_sections.settings_form(db, settings, actor, fewshot_source.operator_labels(db, taxonomy))
team_sections.settings_form(db, taxonomy, actor)
alert_sections.settings_form(db, taxonomy, actor)

st.subheader("Personal data")
st.caption("Masked in every request body before it reaches the API (typed placeholders such as [CARD], [EMAIL]). "
           "The policy in force: "
           + ", ".join(f"{kind} {'on' if getattr(settings, name) else 'OFF'}"
                       for kind, name in zip(("cards", "IBANs", "e-mail", "phones", "IPs"), config.MASK_SWITCHES,
                                             strict=True))
           + f"; phone region {settings.mask_phone_region}; "
           + (f"{len(settings.mask_patterns)} own pattern(s)" if settings.mask_patterns else "no own patterns")
           + (f"; {len(settings.mask_allow)} allow-listed" if settings.mask_allow else "")
           + ". Tickets with no activity for "
           + (f"{settings.retention_days} days are erased." if settings.retention_days else "any time are kept "
              "(retention off)."))
with st.form("privacy"):
    switch_cols = st.columns(5)
    switches: dict[str, Any] = {
        name: switch_cols[i].toggle(label, value=bool(getattr(settings, name)), key=f"privacy_{name}")
        for i, (label, name) in enumerate(zip(("Cards", "IBANs", "E-mail", "Phones", "IPs"), config.MASK_SWITCHES,
                                              strict=True))}
    r1, r2 = st.columns(2)
    region = r1.text_input("Phone region (numbers without a country code)", settings.mask_phone_region)
    retention = r2.number_input("Erase tickets after this many days without activity (0 = keep)", min_value=0,
                                value=int(settings.retention_days), step=1)
    patterns_frame = pd.DataFrame([{"name": k, "regex": v} for k, v in settings.mask_patterns.items()],
                                  columns=["name", "regex"])
    patterns = st.data_editor(patterns_frame, num_rows="dynamic", key="privacy_patterns", width="stretch",
                              column_config={"name": st.column_config.TextColumn("Placeholder name (CUSTOMER)"),
                                             "regex": st.column_config.TextColumn("Regular expression")})
    allow = st.text_area("Allow-list: regular expressions kept as they are, one a line",
                         "\n".join(settings.mask_allow))
    switches["mask_store"] = st.toggle(
        "Store only the masked text of imported tickets", value=bool(settings.mask_store), key="privacy_mask_store",
        help="Off (the default): the database keeps each ticket as written, for operators to act on. On: tickets "
             "imported from now on are stored with the placeholders only; the original values never reach the disk.")
    if st.form_submit_button("Save personal data") and need_operator():
        try:
            config.save_engine(
                db, actor=actor, **switches, mask_phone_region=region.strip(), retention_days=int(retention),
                mask_patterns={str(r["name"] or "").strip(): str(r["regex"] or "")
                               for r in patterns.to_dict("records") if str(r["name"] or "").strip()},
                mask_allow=[line for line in allow.splitlines() if line.strip()])
            st.success("Saved. Requests from now on are masked under this policy.")
        except ValueError as exc:
            st.error(str(exc))

with st.form("erase"):
    st.caption("Erase tickets' personal data on request: their text, stored vectors, the model's reasons and "
               "correction notes. Labels, calls and costs stay (the figures do not change). Audited.")
    erase_ids = st.text_input("Ticket ids (comma or space separated)", key="erase_ids")
    erase_requester = st.text_input("Or every ticket of this requester (e-mail, as imported)", key="erase_requester",
                                    help="Tickets imported with a requester column. The address is not stored: "
                                         "its keyed hash is, and the audit trail keeps a salted hash of it.")
    erase_sure = st.checkbox("Erase them now (unticked: only show what would go)", key="erase_sure")
    if st.form_submit_button("Erase") and need_operator():
        words = erase_ids.replace(",", " ").split()
        bad = [w for w in words if not w.isdigit()]
        if erase_requester.strip() and words:
            st.error("give ticket ids or a requester, not both")
        elif erase_requester.strip():
            try:
                done = privacy.erase_requester(db, erase_requester, actor=actor, dry_run=not erase_sure)
                (st.success if erase_sure else st.info)(done.describe() + ("" if erase_sure else
                                                        "; nothing changed: tick the box to erase"))
            except ValueError as exc:
                st.error(str(exc))
        elif bad or not words:
            st.error(f"not a ticket id: {', '.join(bad)}" if bad else "give at least one ticket id")
        else:
            try:
                done = privacy.erase_tickets(db, [int(w) for w in words], actor=actor, dry_run=not erase_sure)
                (st.success if erase_sure else st.info)(done.describe() + ("" if erase_sure else
                                                        "; nothing changed: tick the box to erase"))
            except ValueError as exc:
                st.error(str(exc))


st.subheader("Local model (tier 0)")
from triage.local import tier as local  # noqa: E402

metrics = local.stored_metrics(db)
if metrics:
    labels = metrics.get("labels") or {}
    cols = st.columns(4)
    cols[0].metric("Trained on", f"{metrics['n_train']} examples",
                   help="Built-in examples and descriptions, operator corrections (weighted most), Sonnet labels and "
                        "confident Haiku labels.")
    cols[1].metric("Operator labels", labels.get("operator", 0))
    cols[2].metric("Retrained, out-of-fold", "—" if metrics.get("human_accuracy") is None
                   else f"{metrics['human_accuracy']:.0%}", help=tiles.RETRAINED_OUT_OF_FOLD)
    cols[3].metric("Calibration error (ECE)", f"{metrics.get('human_ece', metrics['oof_ece']):.3f}",
                   help="0 means a confidence of 0.9 is right 90% of the time.")
    silent = metrics.get("never_predicted") or []
    if silent:
        st.warning(f"The local model never predicted {len(silent)} of {len(taxonomy.names)} categories on the "
                   "labels it was scored on (out of fold): " + ", ".join(taxonomy.shown.get(c, c) for c in silent)
                   + ". More operator labels for them, or a clearer description, help.")
    calibrated_on = str(metrics.get("calibrated_on", "held-out examples"))
    until = (f"until {local.MIN_CALIBRATION} operator labels exist, a ticket is only confident when the built-in "
             "examples and the category's description agree" if calibrated_on.startswith("built-in") else
             "a category's confidence comes from how clearly the ticket matches its description and how alike the "
             "descriptions are (a map measured on other data); once operators have labelled "
             f"{local.MIN_CALIBRATION} tickets, it is calibrated on their labels" if "zero-shot" in calibrated_on
             else "calibrated on your operators' labels, predicted out of fold")
    st.caption(f"Last trained {metrics.get('trained_at', '?')} UTC. It retrains itself after 50 new labels. "
               f"Confidence calibrated on {calibrated_on}: {until}. The threshold is compared with that confidence: "
               "tickets under it go to the review queue.")
    learning = metrics.get("learning_curve")
    if learning and learning.get("points"):
        import plotly.graph_objects as go

        pts = learning["points"]
        x = [p["per_category"] for p in pts]
        fig = go.Figure()
        for key, name in (("accuracy", "Accuracy"), ("ece", "Calibration error (ECE)")):
            fig.add_scatter(x=x, y=[p[key] for p in pts], name=name, mode="lines+markers",
                            error_y={"type": "data", "symmetric": False,
                                     "array": [p[f"{key}_high"] - p[key] for p in pts],
                                     "arrayminus": [p[key] - p[f"{key}_low"] for p in pts]})
        fig.update_layout(title="Learning curve: what more operator labels buy", height=320,
                          xaxis_title="operator labels per category", yaxis_title="on held-out operator labels",
                          yaxis_range=[0, 1], margin={"t": 40, "b": 40})
        st.plotly_chart(fig, key="learning_curve")
        st.caption(f"Measured when it last trained, on the {learning['labels']} operator-labelled tickets: each of "
                   f"{learning['draws']} draws scores {learning['scored']} of them (the bars: lowest and highest draw) "
                   "with a model trained on the built-in examples plus n labels per category from the rest. "
                   "0 is the zero-shot model on your own tickets.")
        st.dataframe(pd.DataFrame([{"labels per category": p["per_category"], "accuracy": round(p["accuracy"], 3),
                                    "ECE": round(p["ece"], 3)} for p in pts]), hide_index=True)
        natural = learning.get("as_labelled") or []
        if natural:
            st.caption("The same, with labels drawn as they come (your labels' own, uneven mix of categories) "
                       "rather than n per category:")
            st.dataframe(pd.DataFrame([{"labels": p["labels"], "accuracy": round(p["accuracy"], 3),
                                        "ECE": round(p["ece"], 3)} for p in natural]), hide_index=True)
    else:
        st.caption(f"The learning curve (accuracy against the number of operator labels) appears once "
                   f"{local.CURVE_MIN_LABELS} tickets carry operator labels.")
else:
    st.caption("Not trained yet: it builds itself from the taxonomy the first time it classifies.")
if st.button("Retrain now", key="retrain"):
    from triage.local.embedder import shared

    with st.spinner("Training on the labels in the database..."):
        local.retrain(db, taxonomy, shared(), actor=actor)
    st.rerun()
cfg = local.tier0_config(db)
with st.form("tier0"):
    enabled = st.toggle("Answer confident tickets locally before Haiku (saves API cost)", value=cfg["enabled"])
    c1, c2 = st.columns(2)
    target = c1.slider("Only once its accuracy on operator labels reaches", 0.5, 1.0, float(cfg["target_accuracy"]),
                       0.01)
    answer_at = c2.slider("And only for tickets it is at least this sure of", 0.5, 1.0, float(cfg["threshold"]), 0.01)
    if st.form_submit_button("Save local tier") and need_operator():
        local.save_tier0_config(db, actor=actor, enabled=enabled, target_accuracy=target,
                                threshold=answer_at)
        st.rerun()
if metrics and cfg["enabled"]:
    active, why = local.tier0_active(db, metrics)
    (st.success if active else st.info)(f"Local tier: {why}.")

st.subheader("Claude API key")
if state.has_api_key():
    st.success("An API key is configured (from `ANTHROPIC_API_KEY`). It is never shown or logged.")
else:
    st.warning("No API key. Set `ANTHROPIC_API_KEY` in the environment the dashboard starts from, then restart.")

st.subheader("Price table in use")
prices = PriceTable.load(settings.prices_path)
st.caption("USD per million tokens. A call is priced with the entry in force on its day; batch calls at "
           f"{prices.batch_multiplier:.0%} of these.")
st.dataframe(pd.DataFrame(prices.as_rows()).astype(str), hide_index=True)

st.subheader("Export")
st.caption("Every ticket with its current label, who set it, and what its model calls cost.")
fmt = st.radio("Format", ["CSV", "JSONL"], horizontal=True, key="export_format")
masked_export = st.checkbox("Masked text (placeholders instead of personal data)", key="export_masked",
                            help="Each ticket's text as the model saw it, under the masking policy in force.")
if st.button("Prepare export", key="prepare_export"):
    st.session_state["export_data"] = export.export_tickets(db, fmt.lower(), actor=actor, masked=masked_export)
if "export_data" in st.session_state:
    data, name = st.session_state["export_data"]
    st.download_button(f"Download {name}", data, file_name=name, key="download_export")

st.subheader("Audit trail")
st.caption("Who started runs, asked for escalations, changed settings, exported, imported labels or retrained, and "
           "when (UTC), newest first. Corrections are in each ticket's history.")
events = audit.recent(db, actor=actor, limit=50)
if events:
    st.dataframe(pd.DataFrame([{**e, "role": e["role"] or "—",
                                "detail": audit.describe(dict(e["detail"]))}
                               for e in events]), hide_index=True, key="audit_table",
                 column_config={"at": st.column_config.DatetimeColumn("when", format="YYYY-MM-DD HH:mm:ss")})
else:
    st.caption("Nothing recorded yet.")
