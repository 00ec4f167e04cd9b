"""The engine tests' fixtures, for pipeline runs here too."""

from tests.engine.conftest import no_dbos_thread_outlives_its_test, pipeline_agents

__all__ = ["no_dbos_thread_outlives_its_test", "pipeline_agents"]
