"""Hotline: an open-source call-center platform (ACD, CMS, WFM)."""

__version__ = "0.1.0"
