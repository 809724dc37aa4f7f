"""Delivery insights: DORA's four keys and pull-request flow from the delivery event frames
(`catalog_pipelines.model.delivery_events`); see docs/delivery.md."""
