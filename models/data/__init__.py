"""Data for the models: synthetic feature rows for the incident model's bench and tests."""
