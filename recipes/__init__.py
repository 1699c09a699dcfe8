"""Recipes: the commands that make what skclap ships."""
