"""Money: the price table, the spending caps, and the spend reports."""
