"""Two reports of one story for the story tests: a lead and its rewrite by another outlet."""

from __future__ import annotations

LEAD = (
    "The US Army deactivated an attack helicopter squadron at Camp Humphreys in Pyeongtaek "
    "last month, a Congressional Research Service report said on Thursday. The squadron of "
    "about 500 soldiers flew Apache helicopters and Shadow drones, and its deactivation comes "
    "as Washington reviews the size and role of its forces in South Korea."
)

REWRITE = (
    "An attack helicopter squadron of the US Army at Camp Humphreys in Pyeongtaek was "
    "deactivated last month, according to a Congressional Research Service report released "
    "on Thursday. The squadron of about 500 soldiers flew Apache helicopters and Shadow "
    "drones; the move comes as Washington reviews the size and role of its forces in Korea."
)
