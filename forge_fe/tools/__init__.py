"""Tools on top of the public API: the `forge-fe` command (`cli`) and the model matrix (`matrix`)."""
