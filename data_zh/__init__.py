"""data_zh package."""
