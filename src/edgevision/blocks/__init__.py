"""Blocks assembled from layers: the repeated units of each architecture."""
