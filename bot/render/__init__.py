"""What a post becomes on each network: text rules, X's weighted length, Bluesky facets. Pure."""
