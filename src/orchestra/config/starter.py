"""The commented starter ``orchestra.yaml`` that ``orchestra init`` writes."""

from __future__ import annotations

from pathlib import Path

from orchestra.config.paths import CONFIG_FILENAME
from orchestra.errors import ConfigError

STARTER_CONFIG = """\
# orchestra.yaml — Orchestra's configuration. Reference: docs/configuration.md
# Check it with `orchestra config check`. Any key can be overridden from the environment:
# ORCHESTRA__ORGANISATION__NAME=acme sets organisation.name (``__`` separates levels).
version: 1

# Upstreams that serve models. Credentials are never written here: `api_key_env` names the
# environment variable that holds the key.
providers:
  anthropic:
    kind: anthropic                 # Anthropic Messages wire format
    base_url: https://api.anthropic.com
    api_key_env: ANTHROPIC_API_KEY
  ollama:
    kind: openai                    # any OpenAI-compatible server: Ollama, vLLM, llama.cpp
    base_url: http://127.0.0.1:11434/v1
    # no api_key_env: a local server needs no credential

# Concrete models, each served by one provider. `price` (USD per million tokens) is only
# needed for models missing from Orchestra's price table; local models cost 0.
models:
  claude-opus-4-5:
    provider: anthropic
  claude-sonnet-4-5:
    provider: anthropic
  claude-haiku-4-5:
    provider: anthropic
  qwen2.5-coder:
    provider: ollama
    upstream_name: qwen2.5-coder:7b
    price: {input: 0, output: 0}

# Agents ask for a tier (opus, sonnet, haiku), not a model. Each tier names its model and
# the models tried, in order, when that one is overloaded, failing or timing out.
tiers:
  opus:
    model: claude-opus-4-5
    fallbacks: [claude-sonnet-4-5]
  sonnet:
    model: claude-sonnet-4-5
    fallbacks: [claude-haiku-4-5]
  haiku:
    model: claude-haiku-4-5
    fallbacks: []                   # e.g. [qwen2.5-coder] to fall back to the local model

# Who works here. A solo developer needs no units; add divisions, tribes, squads and
# guilds as the organisation grows (docs/organisation.md). The stage follows the
# headcount unless `stage:` pins it.
organisation:
  name: my-organisation
  developers:
    - name: developer
      role: admin                   # admin | lead | developer | viewer
  # units:
  #   - {name: platform, kind: division}
  #   - {name: payments, kind: tribe, parent: platform}
  #   - {name: checkout, kind: squad, parent: payments}
  #   - {name: python-guild, kind: guild}
  # developers:
  #   - {name: ana, unit: checkout, role: lead, guilds: [python-guild]}

# Per-team overrides, keyed by a unit name from organisation.units.
# teams:
#   checkout:
#     tiers:
#       haiku: {model: qwen2.5-coder}

# The agent roster: the 119 built-in agents plus your own folders.
# roster:
#   directories: [agents]           # extra folders of <name>.md agent files
#   import_dir: .orchestra/agents   # where `orchestra agents import DIR` copies files
#   tier_overrides:
#     agents: {python-developer: sonnet}
#     categories: {security: opus}

# Gateway, engine and knowledge store: the defaults suit one developer on one machine.
# See docs/configuration.md for their keys.
# gateway: {}
# engine: {}
# knowledge: {}
"""


def write_starter_config(folder: Path, *, force: bool = False) -> Path:
    """Write the starter ``orchestra.yaml`` into ``folder``; refuse to overwrite unless
    ``force``. Returns the path written."""
    target = folder / CONFIG_FILENAME
    if target.exists() and not force:
        raise ConfigError(
            f"{target} already exists",
            hint="edit it, or pass --force to replace it with the starter file",
        )
    folder.mkdir(parents=True, exist_ok=True)
    target.write_text(STARTER_CONFIG, encoding="utf-8")
    return target
