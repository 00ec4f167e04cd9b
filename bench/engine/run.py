"""Engine benchmark: overhead per durable step and agent turn, parallel efficiency,
concurrent runs with CPU by component, tokens per run by phase.

Prints ratios against baselines measured in the same run. ``python -m bench.engine.run
[--runs N] [--latency S] [--turns K]``. Numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from dbos import DBOS, SetWorkflowID

from orchestra.app import Orchestra
from orchestra.config.loader import parse_config
from orchestra.demo import scripted_stack
from orchestra.engine import checkpoint
from orchestra.engine.agent import AgentRunner, AgentTask
from orchestra.engine.agents import RosterAgents
from orchestra.engine.artifacts import ArtifactStore
from orchestra.engine.model import HttpModelClient
from orchestra.engine.runs import RunStore
from orchestra.store import open_database
from orchestra.testing import FakeUpstream, RecordedRequest, Reply, ToolCall
from orchestra.testing.scripted import SAMPLE_TASK, create_sample_repository
from orchestra.tools import CommandLimits, Toolbox, Workspace

CLK = os.sysconf("SC_CLK_TCK")


@DBOS.workflow(name="bench.noop_steps")
def _noop_steps(n: int) -> int:
    total = 0
    for i in range(n):
        total += checkpoint(f"noop:{i}", lambda i=i: i)
    return total


@DBOS.workflow(name="bench.agent")
def _agent_workflow(state: dict[str, Any]) -> dict[str, Any]:
    ctx = _CONTEXT["agent"]
    runner = AgentRunner(ctx["client"], ctx["artifacts"], ctx["runs"], checkpoint=checkpoint)
    outcome = runner.run(AgentTask(**state), "bench", ["read_file", "finish"], ctx["toolbox"])
    return {"calls": outcome.model_calls, "status": outcome.status}


_CONTEXT: dict[str, dict[str, Any]] = {}


def _turns_responder(turns: int) -> Any:
    def respond(request: RecordedRequest) -> Reply:
        done = sum(1 for m in (request.json or {}).get("messages", []) if m["role"] == "assistant")
        if done + 1 >= turns:
            return Reply(tool_calls=[ToolCall("finish", {"summary": "done"})])
        return Reply(
            tool_calls=[ToolCall("read_file", {"path": "README.md", "start_line": done + 1})]
        )

    return respond


def _git_repo(folder: Path) -> Workspace:
    repo = create_sample_repository(folder / "repo")
    return Workspace.create(repo, folder / "wt", "orchestra/bench")


def overhead(turns: int, steps: int) -> dict[str, float]:
    """Agent turns through DBOS (each call and tool a durable step) vs a plain asyncio loop."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        database = open_database(f"sqlite:///{tmp / 'o.db'}")
        ws = _git_repo(tmp)
        toolbox = Toolbox(ws, tmp / "h", ["true"], [], CommandLimits())
        with FakeUpstream.start() as up:
            up.responder = _turns_responder(turns)
            client = HttpModelClient(up.base_url, "bench")
            services = Orchestra(f"sqlite:///{tmp / 'o.db'}", tmp, config_given=parse_config(""))
            runtime = services.engine(client, agents=RosterAgents.load())
            runs = RunStore(database)
            _CONTEXT["agent"] = {
                "client": client,
                "artifacts": ArtifactStore(tmp, database),
                "runs": runs,
                "toolbox": toolbox,
            }
            runtime.launch()
            try:
                started = time.perf_counter()
                for i in range(steps):
                    _ = i  # plain function calls: the baseline of a durable step
                plain_steps = time.perf_counter() - started
                with SetWorkflowID("bench-steps"):
                    started = time.perf_counter()
                    DBOS.start_workflow(_noop_steps, steps).get_result()
                    durable_steps = time.perf_counter() - started
                task = AgentTask(
                    run_id="bench",
                    step_id="agent",
                    phase="bench",
                    agent="bench",
                    user_message="go",
                    model="haiku",
                    max_turns=turns + 1,
                    loop_repeats=turns + 1,
                )
                runs.start_step("agent", "bench", "bench", "bench")
                with SetWorkflowID("bench-agent"):
                    started = time.perf_counter()
                    result = DBOS.start_workflow(_agent_workflow, task.__dict__).get_result()
                    engine_s = time.perf_counter() - started
                assert result["calls"] == turns, result
            finally:
                runtime.shutdown()
                client.close()
                services.close()

            async def plain_loop() -> float:
                messages: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
                async with httpx.AsyncClient(base_url=up.base_url) as http:
                    begin = time.perf_counter()
                    for _ in range(turns):
                        body = {
                            "model": "haiku",
                            "max_tokens": 4096,
                            "system": "bench",
                            "messages": messages,
                        }
                        reply = (
                            await http.post("/v1/messages", json=body, headers={"x-api-key": "b"})
                        ).json()
                        messages.append({"role": "assistant", "content": reply["content"]})
                        results = []
                        for block in reply["content"]:
                            if block["type"] == "tool_use" and block["name"] != "finish":
                                out = toolbox.execute(block["name"], block["input"])
                                results.append(
                                    {
                                        "type": "tool_result",
                                        "tool_use_id": block["id"],
                                        "content": out.content,
                                    }
                                )
                        if not results:
                            break
                        messages.append({"role": "user", "content": results})
                    return time.perf_counter() - begin

            plain_s = asyncio.run(plain_loop())
        database.dispose()
    return {
        "durable_step_us": 1e6 * (durable_steps - plain_steps) / steps,
        "engine_turn_ms": 1e3 * engine_s / turns,
        "plain_turn_ms": 1e3 * plain_s / turns,
        "turn_overhead_ms": 1e3 * (engine_s - plain_s) / turns,
        "turn_ratio": engine_s / plain_s,
    }


def _thread_cpu() -> dict[int, float]:
    out = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / CLK
    return out


class CpuByComponent:
    """Samples per-thread CPU (Linux /proc) and attributes threads to components by name."""

    def __init__(self) -> None:
        self.by_thread: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self.sample()

    def sample(self) -> None:
        names = {t.native_id: t.name for t in threading.enumerate() if t.native_id}
        for tid, cpu in _thread_cpu().items():
            self.by_thread[tid] = (names.get(tid, self.by_thread.get(tid, ("?", 0))[0]), cpu)

    def __enter__(self) -> CpuByComponent:
        self.self0 = resource.getrusage(resource.RUSAGE_SELF)
        self.child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.base = _thread_cpu()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
        self_now = resource.getrusage(resource.RUSAGE_SELF)
        child_now = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.process_s = (self_now.ru_utime + self_now.ru_stime) - (
            self.self0.ru_utime + self.self0.ru_stime
        )
        self.children_s = (child_now.ru_utime + child_now.ru_stime) - (
            self.child0.ru_utime + self.child0.ru_stime
        )

    def split(self) -> dict[str, float]:
        gateway = upstream = 0.0
        for tid, (name, cpu) in self.by_thread.items():
            used = cpu - self.base.get(tid, 0.0)
            if name.startswith(("orchestra-gateway", "orchestra-acct", "accounting-")):
                gateway += used
            elif name.startswith("fake-upstream") or "upstream" in name.lower():
                upstream += used
        engine = max(self.process_s - gateway - upstream, 0.0)
        return {
            "engine": engine,
            "gateway": gateway,
            "simulated model (fake upstream)": upstream,
            "test processes (pytest, git, bandit, coverage)": self.children_s,
        }


def _critical_path(stack: Any, run_id: str) -> float:
    """Sequential sum: each group of parallel agents counts once (its longest), plus every
    engine step (tests, gates, commits) of the pipeline workflow."""
    steps = stack.runtime.services.runs.steps(run_id)
    groups: dict[str, float] = {}
    for s in steps:
        key = (
            s.step.rsplit("-", 1)[0]
            if s.phase in {"green", "fix"}
            else ("review" if s.phase == "review" else s.step)
        )
        groups[key] = max(groups.get(key, 0.0), (s.finished_at - s.started_at).total_seconds())
    engine_steps = 0.0
    for st in DBOS.list_workflow_steps(run_id):
        name = st["function_name"]
        if not (st["started_at_epoch_ms"] and st["completed_at_epoch_ms"]):
            continue
        if name.startswith(
            (
                "tests:",
                "gate:",
                "commit:",
                "bandit",
                "coverage",
                "workspace",
                "diff:",
                "changed:",
                "hash:",
                "report",
                "message:",
            )
        ):
            engine_steps += (st["completed_at_epoch_ms"] - st["started_at_epoch_ms"]) / 1e3
    return sum(groups.values()) + engine_steps


def pipeline(runs: int, latency: float) -> dict[str, Any]:
    """One run with a fixed model latency (parallel efficiency), then ``runs`` at once."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        results: dict[str, Any] = {}
        with scripted_stack(
            tmp / "home", latency_s=latency, extra_yaml="engine: {max_concurrent_agents: 64}"
        ) as stack:
            repo = create_sample_repository(tmp / "repo-0")
            started = time.perf_counter()
            run_id = stack.runtime.start_run(SAMPLE_TASK, repo)
            row = stack.runtime.wait(run_id, timeout_s=900)
            one = time.perf_counter() - started
            assert row.status == "succeeded", row.failure_reason
            critical = _critical_path(stack, run_id)
            report = json.loads(Path(str(row.report_path)).with_suffix(".json").read_text())
            results["one_run_s"] = one
            results["critical_path_s"] = critical
            results["tokens_by_phase"] = report["tokens_by_phase"]
            repos = [create_sample_repository(tmp / f"repo-{i + 1}") for i in range(runs)]
            with CpuByComponent() as cpu:
                started = time.perf_counter()
                ids = [stack.runtime.start_run(SAMPLE_TASK, r) for r in repos]
                rows = [stack.runtime.wait(i, timeout_s=3600) for i in ids]
                many = time.perf_counter() - started
            results["n_runs"] = runs
            results["n_runs_s"] = many
            results["n_runs_ok"] = sum(r.status == "succeeded" for r in rows)
            results["cpu_s"] = cpu.split()
        return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="concurrent runs (50 is the target)")
    parser.add_argument("--latency", type=float, default=0.5, help="simulated model latency, s")
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    o = overhead(args.turns, args.steps)
    print(f"durable step overhead: {o['durable_step_us']:.0f} us per step (vs a plain call)")
    print(
        f"agent turn: engine {o['engine_turn_ms']:.1f} ms, plain asyncio loop "
        f"{o['plain_turn_ms']:.1f} ms -> overhead {o['turn_overhead_ms']:.1f} ms/turn, "
        f"ratio {o['turn_ratio']:.2f}x (zero-latency upstream)"
    )
    p = pipeline(args.runs, args.latency)
    eff = p["one_run_s"] / p["critical_path_s"]
    print(
        f"one run at {args.latency}s/model call: wall {p['one_run_s']:.1f}s, critical path "
        f"{p['critical_path_s']:.1f}s -> parallel efficiency ratio {eff:.2f} (target <= 1.10)"
    )
    print(
        f"{p['n_runs']} concurrent runs: wall {p['n_runs_s']:.1f}s = "
        f"{p['n_runs_s'] / p['one_run_s']:.2f}x one run; {p['n_runs_ok']} succeeded"
    )
    total = sum(p["cpu_s"].values()) or 1.0
    for name, secs in p["cpu_s"].items():
        print(f"  CPU {name}: {secs:.1f}s ({100 * secs / total:.0f}%)")
    share = (p["cpu_s"]["engine"] + p["cpu_s"]["gateway"]) / total
    print(f"  engine + gateway share of CPU: {100 * share:.0f}% (target < 10%)")
    print("tokens per run by phase (input incl. cache reads / output / calls):")
    for phase, t in p["tokens_by_phase"].items():
        print(f"  {phase}: {t['input']} / {t['output']} / {t['calls']}")


if __name__ == "__main__":
    main()
