"""`--environment=envtiers-<tier>`: Metaflow environments backed by envtiers' committed lockfiles.

Unlike stock `--environment=pypi|conda`, nothing is resolved at run time and no micromamba is
downloaded: local tasks start on the interpreter of the env built from the lock (see
`tier_decorator`), remote tasks rebuild that env from the lockfiles shipped in the code package
(pip, conda) or run in the locked image (image).
"""

from __future__ import annotations

import inspect
import shlex
from pathlib import Path

from metaflow.exception import MetaflowException
from metaflow.metaflow_environment import MetaflowEnvironment
from metaflow.packaging_sys import ContentType

# What a remote task needs besides the flow's own folder: the toolkit, the settings and the locks.
# docker/, whole: `envtiers check` in an image-tier task recomputes the image's content tag, which
# hashes every file of it (and of [image] code) as the host's check does.
ALWAYS_PACKAGED = ("envtiers", "envs", "lockfiles", "docker")
# Set in [flow] include of envs/tiers.toml: the project's own packages the steps import.
REMOTE_DECORATORS = ("batch", "kubernetes")


class EnvtiersException(MetaflowException):
    headline = "envtiers"


def _error(error):
    """An envtiers error as Metaflow prints user errors: the headline and the fix, no traceback."""
    message = error.headline + (f"\n    fix: {error.fix}" if getattr(error, "fix", None) else "")
    return EnvtiersException(message)


class TierEnvironment(MetaflowEnvironment):
    TYPE = "envtiers"
    TIER = ""
    # The platform remote tasks run on (AWS Batch and Kubernetes: Linux x86-64).
    REMOTE_PLATFORM = "linux-64"
    # Whether the tier decides the image of remote steps (the image tier: its record, by digest).
    PINS_IMAGE = False

    def __init__(self, flow):
        super().__init__(flow)
        self.flow = flow
        self._project = None
        self._launch = None
        self._verified = None

    # -- envtiers objects -------------------------------------------------------------------
    def project(self):
        """The envtiers project around the flow file (the code package's root on a remote task)."""
        if self._project is None:
            from envtiers.errors import EnvtiersError
            from envtiers.settings import find_root, load_project

            try:
                flow_dir = Path(inspect.getfile(self.flow.__class__)).resolve().parent
                self._project = load_project(find_root(flow_dir))
            except EnvtiersError as error:
                raise _error(error) from None
        return self._project

    def tier(self):
        from envtiers.registry import get_tier

        return get_tier(self.TIER)

    def local_launch(self):
        """Build (or reuse) this tier's environment for the host, once per process."""
        if self._launch is None:
            from envtiers.errors import EnvtiersError

            try:
                self._launch = self.tier().local_launch(self.project())
            except EnvtiersError as error:
                raise _error(error) from None
            # An image is pulled, not built, when this machine lacks it (make image builds it).
            what = ("built" if self._launch.prefix is not None else "pulled") if self._launch.created else "reusing"
            self.logger(f"envtiers: {what} the {self.TIER} environment {self._launch.key[:19]}")
            if self._launch.prefix is not None:
                self._check_metaflow(self._launch.prefix)
        return self._launch

    def _check_metaflow(self, prefix):
        """Tasks run the env's own Metaflow: it must be there, and should match the launcher's."""
        import metaflow

        found = sorted(Path(prefix).glob("lib/python3*/site-packages/metaflow-*.dist-info"))
        if not found:
            raise EnvtiersException(
                f"the {self.TIER} environment {prefix} has no metaflow, so no step can run in it\n"
                "    fix: add metaflow (the version you launch with) to envs/requirements.in, then `make lock`"
            )
        version = found[0].name.removeprefix("metaflow-").removesuffix(".dist-info")
        if version != metaflow.__version__:
            self.logger(
                f"envtiers: warning: the steps run Metaflow {version} (from the lock), launched by "
                f"Metaflow {metaflow.__version__}: pin the same version in both if anything misbehaves"
            )

    # -- MetaflowEnvironment hooks ----------------------------------------------------------
    def validate_environment(self, logger, datastore_type):
        """Metaflow calls this before any task (the hook `--environment=uv` uses): a stale or
        tampered lock of this tier stops the run here, with `make lock` / `make image` as the fix."""
        self.logger = logger
        self.datastore_type = datastore_type
        import os

        from envtiers.errors import EnvtiersError
        from envtiers.tiers import TIER_VARIABLE, refuse_stale

        if os.environ.get(TIER_VARIABLE) == self.TIER:
            return  # a task the launcher started in the tier: the launcher checked the lock

        try:
            refuse_stale(self.tier(), self.project())
        except EnvtiersError as error:
            raise _error(error) from None

    def init_environment(self, echo, only_steps=None):
        # Called when the code package is made: after argo-workflows / step-functions attach
        # their @kubernetes / @batch to every step, which @envtiers' step_init never sees.
        for step in self.flow:
            self.pin_remote_image(step.decorators)

    def pin_remote_image(self, decorators, verify=False):
        """Give @batch / @kubernetes the tier's image (the image tier: the record's, by digest),
        unless the step chose one. `verify`: first make sure the registry holds that digest (once
        per process), so a deleted or replaced image stops the run before any job is submitted."""
        remote = [deco for deco in decorators if deco.name in REMOTE_DECORATORS]
        if not remote or not self.PINS_IMAGE:
            # pip/conda: any linux-64 image will do. Deciding this without the tier keeps the
            # remote task (whose env holds only the project's lock) from importing envtiers' tiers.
            return
        from envtiers.errors import EnvtiersError

        try:
            if verify and self._verified is None:
                from envtiers.image.remote import verify_pushed

                self._verified = verify_pushed(self.project()).reference
            image = self._verified or self.tier().remote_image(self.project())
        except EnvtiersError as error:
            raise _error(error) from None
        for deco in remote:
            if image and "image" not in deco._user_defined_attributes:
                deco.attributes["image"] = image

    def decospecs(self):
        # Every step gets @envtiers, as --environment=conda gives every step @conda.
        return ("envtiers",)

    def add_to_package(self):
        """The toolkit, settings and lockfiles, plus the project packages named in [flow] include
        (listed by envtiers.codefiles, the same walk the image's tag and COPY use)."""
        from envtiers.codefiles import flow_code, project_files

        project = self.project()
        names = [*ALWAYS_PACKAGED, *flow_code(project)]
        files = []
        if not (project.root / "envtiers").is_dir():
            # envtiers is installed (a wheel), not part of the project: ship the installed copy, so
            # the remote task's `python -m envtiers env create` runs the same toolkit.
            from envtiers.toolkit import part_files

            names.remove("envtiers")
            files += [
                (str(path), arcname, ContentType.USER_CONTENT)
                for path, arcname in part_files()
                if arcname.startswith("envtiers/")
            ]
        files += [
            (str(path), str(path.relative_to(project.root)), ContentType.USER_CONTENT)
            for path in project_files(project, names)
        ]
        return files

    def ship_environment(self):
        """Upload the remote platform's locked files (pip and conda tiers) into the datastore, once
        per launcher, so that remote tasks install from there: see envtiers.remote.shipping. Sets
        the manifest's URL in the environment, which the `batch step` / `kubernetes step`
        subprocesses inherit."""
        import os

        from envtiers.errors import EnvtiersError
        from envtiers.remote import shipping

        if self.TIER not in shipping.SHIPPABLE_TIERS or os.environ.get(shipping.MANIFEST_VARIABLE):
            return
        if getattr(self, "datastore_type", None) != "s3" or not shipping.shipping_enabled(self.project()):
            return
        from metaflow.metaflow_config import DATASTORE_SYSROOT_S3

        project = self.project()
        try:
            result = shipping.ship(
                project,
                root=f"{DATASTORE_SYSROOT_S3.rstrip('/')}/envtiers",
                tier=self.TIER,
                platform=self.REMOTE_PLATFORM,
                key=shipping.remote_env_key(project, self.TIER, self.REMOTE_PLATFORM),
                report=self.logger,
            )
        except EnvtiersError as error:
            raise _error(error) from None
        os.environ[shipping.MANIFEST_VARIABLE] = result.manifest_url

    def bootstrap_commands(self, step_name, datastore_type):
        import os

        from envtiers.errors import EnvtiersError
        from envtiers.remote import shipping

        try:
            commands = self.tier().bootstrap_commands(self.project(), self.REMOTE_PLATFORM)
            manifest = os.environ.get(shipping.MANIFEST_VARIABLE)
            if manifest and self.TIER in shipping.SHIPPABLE_TIERS:
                commands = shipping.shipped_bootstrap(
                    self.project(), commands, manifest=manifest, tier=self.TIER, platform=self.REMOTE_PLATFORM
                )
        except EnvtiersError as error:
            raise _error(error) from None
        image = self._remote_image_of(step_name)
        # The task records the image it runs in (envtiers_runtime): the launcher knows it, by digest.
        exports = [f"export ENVTIERS_IMAGE={shlex.quote(image)}"] if image else []
        if all(command.startswith("export ") for command in commands):
            # Nothing to build (the image tier: its env is in the image): no message, no log flushes
            # (each one starts a Python that imports Metaflow, a second or two per task).
            return [*exports, *commands]
        return [
            *exports,
            f"echo 'envtiers: building the {self.TIER} environment from the lockfiles in the code package'",
            "flush_mflogs",
            *commands,
            "flush_mflogs",
        ]

    def _remote_image_of(self, step_name):
        for step in self.flow:
            if step.name == step_name:
                for deco in step.decorators:
                    if deco.name in REMOTE_DECORATORS and deco.attributes.get("image"):
                        return str(deco.attributes["image"])
        return None

    def executable(self, step_name, default=None):
        # Only remote launchers (batch, kubernetes, argo, step functions) ask: local tasks get the
        # tier's interpreter from the decorator's runtime_step_cli.
        if step_name.startswith("_"):
            return super().executable(step_name, default)
        return self.tier().remote_python(self.REMOTE_PLATFORM)

    def get_environment_info(self, include_ext_info=False):
        info = super().get_environment_info(include_ext_info)
        info["envtiers_tier"] = self.TIER
        return info


class PipTierEnvironment(TierEnvironment):
    TYPE = "envtiers-pip"
    TIER = "pip"


class CondaTierEnvironment(TierEnvironment):
    TYPE = "envtiers-conda"
    TIER = "conda"


class ImageTierEnvironment(TierEnvironment):
    TYPE = "envtiers-image"
    TIER = "image"
    PINS_IMAGE = True
