"""Everything that knows uvicorn: its config with our limits, the frame protocol, workers."""
