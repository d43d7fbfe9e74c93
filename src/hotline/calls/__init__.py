"""Calls: the B2BUA joining callers and agents' phones, and the SIP directory it serves."""
