"""Job handlers (DESIGN J3): ports that run one job and classify how it failed."""
