"""Case 4: AlphaGo and AlphaGo Zero on small boards — a GTP engine measured against GNU Go."""
