"""Registry governance as its own small service, apart from the API.

`signature` checks MLflow's webhook signatures (pure), `receiver` is the Flask app that
MLflow calls when an alias moves (it reconciles the champion, and again on a schedule),
`access` sets up MLflow's users, permissions and the webhook. The reconcile itself is
`registry.governance.sync_champion`, the same one `persona model sync` and the start of
every cycle run.
"""
