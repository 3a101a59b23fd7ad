"""rest_v2/: the simulator's REST v2 catalogue, orders, stock and users (built on first use).

Follows the fact sheet `rest-v2-catalogue.md`; `world.RestWorld` holds the state and
`routes.serve` answers the HTTP paths. Kept import-free so `data.SimConfig` can import
`config.RestConfig` without a cycle.
"""
