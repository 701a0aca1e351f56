"""The model registry: numbered versions, champion/previous aliases, the promotion ledger, proposals."""

from lstmops.registry.versions import (ALIASES, PROPOSAL_STATUSES, ModelVersion, NoModelError, Promotion,
                                       PromotionConflict, Registration, Registry, RegistryError, default_actor,
                                       parse_ref)

__all__ = ["ALIASES", "PROPOSAL_STATUSES", "ModelVersion", "NoModelError", "Promotion", "PromotionConflict",
           "Registration", "Registry", "RegistryError", "default_actor", "parse_ref"]
