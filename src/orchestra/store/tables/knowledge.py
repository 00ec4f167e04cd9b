"""Tables owned by the knowledge domain.

None: knowledge entries, their vectors, the embedding-model record and the ingested-file
hashes live in LanceDB (``orchestra.knowledge.store``), next to the vectors they describe,
so the knowledge store needs no relational tables and no migration.
"""

from __future__ import annotations
