"""Trend 2: AutoML for tabular data, and the course's beginner projects (Titanic, house prices, segmentation)."""
