"""Descriptor-file reading for the files provider: safe YAML, Location following, placeholders.

Everything here touches the file system; the entity model (`catalog_pipelines.model`) does not.
These modules call the model (validation helpers, limits), never the other way round.
"""
