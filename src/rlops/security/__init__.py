"""Who may do what: API keys, principals, roles and permissions, scopes.

Authentication turns a presented key into a :class:`Principal` (:meth:`KeyStore.authenticate`); authorisation
asks the principal (:meth:`Principal.require`). The service does not call these yet; see ``docs/security.md``.
"""

from rlops.security.keys import KeyRecord, KeyStore
from rlops.security.permissions import GLOBAL, ROLE_PERMISSIONS, WRITES, Permission, Role, role_permissions
from rlops.security.principal import Principal
from rlops.security.scopes import Scope

__all__ = ["GLOBAL", "ROLE_PERMISSIONS", "WRITES", "KeyRecord", "KeyStore", "Permission", "Principal", "Role",
           "Scope", "role_permissions"]
