"""Components and how they are found: hookspecs, protocols, the registry, plugin discovery, parameter helpers, descriptions. Imports only base."""
