"""Helpers shared by the tests (not tests themselves): synthetic media, a fake model, local servers."""
