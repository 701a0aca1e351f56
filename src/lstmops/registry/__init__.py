"""The model registry: numbered versions, champion/previous aliases, the promotion ledger."""

from lstmops.registry.versions import (ALIASES, ModelVersion, NoModelError, Promotion, PromotionConflict,
                                       Registration, Registry, RegistryError, default_actor, parse_ref)

__all__ = ["ALIASES", "ModelVersion", "NoModelError", "Promotion", "PromotionConflict", "Registration", "Registry",
           "RegistryError", "default_actor", "parse_ref"]
