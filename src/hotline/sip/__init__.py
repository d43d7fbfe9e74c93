"""SIP: a sans-I/O core (messages, transactions, dialogs, registrar, digest, SDP)."""
