"""Page sections shared or split out of the pages: plain functions that render one part of a page."""
