"""MLflow tracking and registry: experiments, logging, registration, aliases, gates.

The registered model `MODEL_NAME` has aliases ``champion`` (served) and ``challenger``
(candidate); no deprecated stages. MLflow is imported only in this package and in
`persona.pyfunc`. Modules: `tracking` (configure, runs), `plots` (persona map),
`versions` (register, aliases, load), `gates`, `lifecycle` (bootstrap, train_challenger),
`promotion` (promote, rollback), `governance` (champion moves made outside the platform),
`results` (what they return).
"""

from persona.model import LoadedModel
from persona.registry.gates import GateInputs, GateResult, evaluate_gates
from persona.registry.governance import sync_champion
from persona.registry.lifecycle import (
    bootstrap,
    find_challenger,
    load_features,
    train_challenger,
)
from persona.registry.promotion import champion_history, gates_for, promote, rollback
from persona.registry.results import (
    PromotionResult,
    RegisteredVersion,
    RollbackResult,
    SyncResult,
    TrainedVersion,
    VersionSummary,
)
from persona.registry.tracking import configure
from persona.registry.versions import (
    CHALLENGER,
    CHAMPION,
    alias_version,
    champion_reference_months,
    list_versions,
    load_model_for_serving,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "GateInputs",
    "GateResult",
    "LoadedModel",
    "PromotionResult",
    "RegisteredVersion",
    "RollbackResult",
    "SyncResult",
    "TrainedVersion",
    "VersionSummary",
    "alias_version",
    "bootstrap",
    "champion_history",
    "champion_reference_months",
    "configure",
    "evaluate_gates",
    "find_challenger",
    "gates_for",
    "list_versions",
    "load_features",
    "load_model_for_serving",
    "promote",
    "rollback",
    "sync_champion",
    "train_challenger",
]
