"""`@envtiers`: attached to every step by `--environment=envtiers-<tier>`.

On the machine that runs the flow, it starts each local task on the tier's interpreter (the env
built from the lock, or `docker run` of the locked image) instead of the launching interpreter.
Steps that run remotely (`@batch`, `@kubernetes`) are left to the environment's bootstrap; in the
image tier their `image=` is filled from the image record unless the step sets one.

In every task it records where the step really ran, as artifacts:
`envtiers_tier`, `envtiers_lock_hash` (the key of the environment's completion marker, which
names the lock it was built from), `envtiers_python` (sys.executable), `envtiers_prefix`, and
`envtiers_runtime` (scheduler, job id, hostname, image digest, tier, lock hash, python, platform:
see envtiers/runtime.py), and `envtiers_provenance` (step name -> envtiers_runtime, for this
step and the steps before it).
"""

from __future__ import annotations

import sys
from pathlib import Path

from metaflow.decorators import StepDecorator
from metaflow.exception import MetaflowException

REMOTE_DECORATORS = ("batch", "kubernetes")


class EnvtiersStepException(MetaflowException):
    headline = "envtiers"


class EnvtiersStepDecorator(StepDecorator):
    name = "envtiers"
    defaults: dict[str, object] = {}  # noqa: RUF012 (Metaflow's decorator protocol: a class-level dict)

    def step_init(self, flow, graph, step_name, decorators, environment, flow_datastore, logger):
        tier = getattr(environment, "TIER", "")
        if not tier:
            raise EnvtiersStepException(
                f"@envtiers on step {step_name} needs --environment=envtiers-pip, envtiers-conda or envtiers-image"
            )
        self.environment = environment
        self.step_name = step_name
        self.tier = tier
        self.remote = any(deco.name in REMOTE_DECORATORS for deco in decorators)
        # On the launcher (not inside a remote task): the registry must still hold the image.
        environment.pin_remote_image(decorators, verify=self.remote and _on_launcher())

    def runtime_init(self, flow, graph, package, run_id):
        if self.remote:
            self.environment.ship_environment()  # the pip or conda lock's files into the datastore, once
        if not self.remote:
            launch = self.environment.local_launch()  # build (or reuse) before the first task starts
            if launch.env_slot is not None:
                _share_tempdir()

    def runtime_step_cli(self, cli_args, retry_count, max_user_code_retries, ubf_context):
        if self.remote:
            return
        launch = self.environment.local_launch()
        project = self.environment.project()
        env = dict(launch.env)
        # The project (its flows import its packages), then envtiers and this extension when the
        # project does not carry its own copy: nothing else of the launcher leaks into the task.
        python_path = [str(project.root)]
        if not (project.root / "metaflow_extensions" / "envtiers").is_dir():
            python_path.append(str(_toolkit_path(project.cache_dir)))
        env["PYTHONPATH"] = ":".join(python_path)
        env["PYTHONNOUSERSITE"] = "1"
        cli_args.env.update(env)
        # The image tier's `docker run` forwards, by name, what the runtime adds for this task, and
        # mounts the files its options name (Metaflow's --local-config-file lives in the host's /tmp).
        files = _option_files(cli_args.top_level_options, cli_args.command_options)
        if launch.env_slot is not None and _SHARED_TEMPDIR:
            files.append(_SHARED_TEMPDIR)
        cli_args.entrypoint[:1] = list(launch.argv_forwarding(cli_args.env, files))

    def task_pre_step(
        self,
        step_name,
        task_datastore,
        metadata,
        run_id,
        task_id,
        flow,
        graph,
        retry_count,
        max_user_code_retries,
        ubf_context,
        inputs,
    ):
        marker = _marker(Path(sys.prefix))
        if marker is None or marker.get("tier") not in (self.tier, None):
            raise EnvtiersStepException(
                f"step {step_name} runs on {sys.executable}, which is not an envtiers {self.tier} environment "
                f"(no completion marker in {sys.prefix})"
            )
        flow.envtiers_tier = self.tier
        flow.envtiers_lock_hash = marker.get("key")
        flow.envtiers_python = sys.executable
        flow.envtiers_prefix = sys.prefix
        flow.envtiers_runtime = _runtime(self.tier, marker.get("key"))
        # Every step so far, so a later step (the evaluation card) can say where each one ran.
        try:
            history = dict(getattr(flow, "envtiers_provenance", None) or {})
        except Exception:  # a join sees one value per branch: start the history from this step
            history = {}
        history[step_name] = flow.envtiers_runtime
        flow.envtiers_provenance = history


_SHARED_TEMPDIR = None


def _share_tempdir():
    """Point the launcher's temp files at a private folder the task containers mount: Metaflow
    writes the flow's Config values to a temp file after the decorators have run and passes its
    path to each task (--local-config-file), so the folder must exist before that. Once per run."""
    global _SHARED_TEMPDIR
    if _SHARED_TEMPDIR is None:
        import atexit
        import shutil
        import tempfile

        _SHARED_TEMPDIR = tempfile.mkdtemp(prefix="envtiers-task-files-")
        tempfile.tempdir = _SHARED_TEMPDIR
        atexit.register(shutil.rmtree, _SHARED_TEMPDIR, ignore_errors=True)


def _option_files(*option_maps):
    """Absolute paths of existing files among the values of Metaflow's task options."""
    import os

    found = []
    for options in option_maps:
        for value in (options or {}).values():
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(item, str) and item.startswith("/") and os.path.isfile(item):
                    found.append(item)
    return found


def _toolkit_path(cache_dir):
    """A folder holding only `envtiers` and `metaflow_extensions/envtiers` (never the launcher's
    whole site-packages, when envtiers is an installed wheel)."""
    from envtiers.toolkit import task_path

    return task_path(cache_dir)


def _on_launcher():
    import os

    from envtiers.runtime import scheduler_of

    return scheduler_of(os.environ) == "local"


def _runtime(tier, lock_hash):
    import os

    from envtiers.runtime import runtime_info

    return runtime_info(tier=tier, lock_hash=lock_hash, environ=os.environ)


def _marker(prefix):
    from envtiers.envcache import read_marker

    return read_marker(prefix)
