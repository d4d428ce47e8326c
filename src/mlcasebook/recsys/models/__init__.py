"""One module per model family; every model follows ``models.base.Recommender``."""
