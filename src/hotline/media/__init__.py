"""Sans-I/O media core: G.711, RTP, DTMF, prompts and call recording for the media engine."""
