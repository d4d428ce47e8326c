"""Case 5: dermatologist-level skin-lesion classification on HAM10000 (Esteva et al. 2017, at laptop scale)."""
