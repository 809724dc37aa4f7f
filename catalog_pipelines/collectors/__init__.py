"""Fact collectors: turn one source (a vendor API or a folder of report files) into observations
about entities. Collectors import `catalog_pipelines.model` only: they never write and never see
the catalog; `services.facts` maps their observations to entities (through annotations) and stores
them. The contract is `collectors.base`; the registry (entry-point group
`catalog_pipelines.collectors`) is `collectors.registry`.
"""
