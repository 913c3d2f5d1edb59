"""Page data cached across reruns and sessions, keyed by a cheap data version: a click that changes nothing
reads one version (a few rows) and no figures; new data changes the version, and the next run recomputes.

The cache lives here, in the dashboard, because reruns are Streamlit's; the engine computes, uncached."""

from __future__ import annotations

from datetime import date

import streamlit as st

from db.engine import Database
from triage import story as story_mod
from triage.access import Actor
from triage.quality import groups as quality_groups
from triage.quality import measure as quality
from triage.quality import priority as priority_quality
from triage.quality import unreviewed as unreviewed_quality
from triage.spend import reports as reporting
from triage.spend.pricing import PriceTable


@st.cache_data(max_entries=64, show_spinner=False)
def _spend_page(_db: Database, url: str, version: tuple[int, ...], start: date, end: date, by: str, tier2_model: str,
                today: date) -> reporting.SpendPage:
    return reporting.spend_page(_db, start, end, by, tier2_model=tier2_model, today=today)


def spend_page(db: Database, start: date, end: date, by: str, *, tier2_model: str,
               today: date) -> reporting.SpendPage:
    return _spend_page(db, db.url, reporting.data_version(db), start, end, by, tier2_model, today)


@st.cache_data(max_entries=8, show_spinner=False)
def _quality(_db: Database, url: str, version: int, classes: tuple[str, ...]) -> quality.Quality:
    return quality.measure(_db, classes=classes)


def quality_measure(db: Database, classes: tuple[str, ...] = ()) -> quality.Quality:
    return _quality(db, db.url, quality.data_version(db), classes)


@st.cache_data(max_entries=8, show_spinner=False)
def _quality_by_group_size(_db: Database, url: str, version: int) -> list[quality_groups.GroupQuality]:
    return quality_groups.by_group_size(_db, only_if_grouped=True)


def quality_by_group_size(db: Database) -> list[quality_groups.GroupQuality]:
    return _quality_by_group_size(db, db.url, quality.data_version(db))


@st.cache_data(max_entries=8, show_spinner=False)
def _priority(_db: Database, url: str, version: tuple[int, int], actor: Actor) -> priority_quality.PriorityQuality:
    return priority_quality.measure(_db, actor=actor)


def priority(db: Database, *, actor: Actor) -> priority_quality.PriorityQuality:
    """The Quality page's priority figures, measured again only when labels or operator priorities change."""
    return _priority(db, db.url, priority_quality.data_version(db), actor)


@st.cache_data(max_entries=8, show_spinner=False)
def _unreviewed(_db: Database, url: str, version: tuple[int, int, float]) -> unreviewed_quality.Unreviewed:
    return unreviewed_quality.figures(_db)


def unreviewed(db: Database) -> unreviewed_quality.Unreviewed:
    """The blind audit's figures (Quality and Audit pages), read again only when an answer, a settled ticket, a
    redraw or the audit rate changes them (`unreviewed.data_version`)."""
    return _unreviewed(db, db.url, unreviewed_quality.data_version(db))


@st.cache_data(max_entries=8, show_spinner=False)
def _tickets_per_day(_db: Database, url: str, version: tuple[int, ...], today: date) -> float | None:
    return quality.tickets_per_day(_db)


def tickets_per_day(db: Database) -> float | None:
    """Tickets classified a day (what the review budget scales review shares by), read again when labels change
    or the day does (a 28-day average)."""
    return _tickets_per_day(db, db.url, (quality.data_version(db),), date.today())


@st.cache_data(max_entries=16, show_spinner=False)
def _story(_db: Database, url: str, version: tuple[int, ...], start: date, end: date, minutes: float,
           tier2_model: str, prices_path: str | None, today: date) -> story_mod.Story:
    return story_mod.story(_db, start, end, minutes_per_review=minutes, tier2_model=tier2_model,
                           prices=PriceTable.load(prices_path), today=today)


def story(db: Database, start: date, end: date, *, minutes: float, tier2_model: str, prices_path: str | None,
          today: date) -> story_mod.Story:
    return _story(db, db.url, story_mod.data_version(db), start, end, minutes, tier2_model, prices_path, today)
