"""Examples: a feature service for the job platform, and the demo campaign's files."""
