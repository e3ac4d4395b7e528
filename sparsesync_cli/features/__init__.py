"""Model inputs from decoded media: the papers' pre-processing, in torch."""
