"""Train, evaluate and deploy a RetinaNet (KerasCV) plant-disease detector, in the tier you pick.

    make run TIER=pip                                               # or conda, image
    python flows/detector_flow.py --environment=envtiers-pip run --model-config test
    python flows/detector_flow.py --environment=envtiers-pip run --with kubernetes   # GPU on Kubernetes
    DETECTOR_FAIL_AT=evaluate_model make run   # then: make resume (evaluate_model and after rerun)
    python flows/detector_flow.py ... run --sweep '[{"seed": 0}, {"seed": 1, "learning_rate": 5e-4}]' --max-workers 2

Training is a foreach over the `--sweep` candidates (one, with no overrides, without `--sweep`).
`evaluate_model` is its join: it keeps every candidate's validation metrics in `sweep_results`,
takes only the best one's artifacts (validation AP50, ties: the first), evaluates it, and
`deploy` ships it. So a run without `--sweep` has the same five steps as before the sweep.

`--environment=envtiers-<tier>` (the Metaflow extension in metaflow_extensions/envtiers) starts
every step inside the environment built from that tier's committed lock: no resolution at run
time, on this machine or on AWS Batch / Kubernetes. Every task records where it ran in the
`envtiers_*` artifacts. `--environment=local` runs the same steps in the launching interpreter.

From a notebook:

    from metaflow import Flow
    run = Flow("DetectorFlow").latest_successful_run
    run["evaluate_model"].task.data.eval_result["ap50"], run["deploy"].task.data.endpoint_url
"""

import time

from metaflow import Config, FlowSpec, Parameter, card, current, resources, step

# What the training step asks of a remote scheduler (ignored on a local run). Override at deploy
# time: --config-value compute '{"train_gpu": 4, "train_cpu": 16, "train_memory": 60000}'
COMPUTE_DEFAULTS = {"train_gpu": 1, "train_cpu": 4, "train_memory": 16000}


class DetectorFlow(FlowSpec):
    compute = Config("compute", default_value=COMPUTE_DEFAULTS)

    data = Parameter(
        "data",
        default="data/sample",
        help="PlantDoc-layout folder (TRAIN/, TEST/), relative to the project, or s3://bucket/prefix/",
    )
    model_config = Parameter("model-config", default="default", help="model configuration: test, default or full")
    epochs = Parameter("epochs", default=0, type=int, help="training epochs (0: the configuration's)")
    image_size = Parameter(
        "image-size", default=0, type=int, help="square input size, a multiple of 32 (0: the configuration's)"
    )
    batch_size = Parameter("batch-size", default=0, type=int, help="training batch size (0: the configuration's)")
    seed = Parameter("seed", default=0, type=int, help="fixes the initial weights, shuffle order and augmentation")
    wandb_mode = Parameter(
        "wandb-mode", default="auto", help="auto (online with WANDB_API_KEY, else offline), online, offline, disabled"
    )
    deploy_target = Parameter("deploy-target", default="local", help="local (a server on this machine) or sagemaker")
    sagemaker_endpoint = Parameter("sagemaker-endpoint", default="plantdoc-detector", help="endpoint name (sagemaker)")
    sagemaker_role_arn = Parameter("sagemaker-role-arn", default="", help="SageMaker execution role ARN (sagemaker)")
    sagemaker_bucket = Parameter("sagemaker-bucket", default="", help="S3 bucket for model.tar.gz (sagemaker)")
    sagemaker_image_uri = Parameter("sagemaker-image-uri", default="", help="serving image URI (sagemaker)")
    sweep = Parameter(
        "sweep",
        default="",
        help="JSON list of training overrides, one candidate each (keys: seed, model_config, epochs, image_size, "
        'batch_size, learning_rate), e.g. \'[{"seed": 0}, {"seed": 1}]\'; empty: one training',
    )
    sweep_allow_failures = Parameter(
        "sweep-allow-failures", default=False, type=bool, help="true: a failed candidate is recorded and skipped"
    )

    @step
    def start(self):
        """Fail fast: the data is there, the tier's lock is fresh, the choices are valid."""
        from flow_support import check_choices, check_data, check_lock

        self.data_dir, self.num_train_images, self.num_test_images = check_data(self.data)
        self.lock_status = check_lock(getattr(self, "envtiers_tier", None))
        self.wandb_run_mode = check_choices(
            wandb_mode=self.wandb_mode, deploy_target=self.deploy_target, sagemaker=self._sagemaker_settings()
        )
        print(f"data: {self.data_dir} ({self.num_train_images} train, {self.num_test_images} test images)")
        print(f"lock: {self.lock_status}; W&B: {self.wandb_run_mode}")
        from sweep_support import check_sweep

        self.candidates = check_sweep(self.sweep)
        self.next(self.augment_data_train_model, foreach="candidates")

    @resources(gpu=compute.train_gpu, cpu=compute.train_cpu, memory=compute.train_memory)
    @step
    def augment_data_train_model(self):
        """Augment (flip, jittered resize) and train one candidate; its weights become an artifact."""
        from flow_support import data_folder, fail_if_injected, pack_run, png_bytes, run_dir_for
        from sweep_support import failure_text

        from detector.pipeline import augmented_sample, train_on_folder
        from detector.sweep import CandidateResult, validation_metrics

        started_at = time.time()
        index, overrides = self.input["index"], dict(self.input["overrides"])
        self.trained_config = overrides.get("model_config", self.model_config)
        seed = overrides.get("seed", self.seed)
        run_dir = run_dir_for(current.flow_name, current.run_id) / "candidates" / str(index)
        data_dir = data_folder(self.data)  # this task's copy (S3: downloaded here, once)
        try:
            # DETECTOR_FAIL_AT=augment_data_train_model fails every candidate, .../1 only candidate 1
            fail_if_injected(current.step_name)
            fail_if_injected(f"{current.step_name}/{index}")
            trained = train_on_folder(
                data_dir,
                run_dir,
                config_name=self.trained_config,
                epochs=overrides.get("epochs", self.epochs) or None,
                seed=seed,
                wandb_mode=self.wandb_run_mode,
                overrides={
                    "image_size": overrides.get("image_size", self.image_size),
                    "batch_size": overrides.get("batch_size", self.batch_size),
                    "learning_rate": overrides.get("learning_rate"),
                },
            )
            scores = validation_metrics(run_dir, data_dir)
        except Exception as error:
            if not self.sweep_allow_failures:
                raise
            self.candidate_result = CandidateResult(
                index, overrides, current.pathspec, "failed", error=failure_text(error), started_at=started_at
            ).to_dict()
            print(f"candidate {index} failed (--sweep-allow-failures: recorded, skipped by the join):\n{error}")
            self.next(self.evaluate_model)
            return
        self.class_names = trained.class_names
        self.history = trained.history
        self.train_seconds = trained.seconds
        self.trained_run = pack_run(run_dir)
        self.candidate_result = CandidateResult(
            index,
            overrides,
            current.pathspec,
            "ok",
            ap=scores["ap"],
            ap50=scores["ap50"],
            train_seconds=trained.seconds,
            started_at=started_at,
            finished_at=time.time(),
        ).to_dict()
        sample = augmented_sample(data_dir, run_dir, seed=seed)
        self.sample_image, self.sample_boxes, self.sample_classes = sample["image"], sample["boxes"], sample["classes"]
        self.sample_image_png = png_bytes(self.sample_image)
        print(f"candidate {index} ({overrides or 'flow parameters'}): validation AP50 {scores['ap50']}")
        self.next(self.evaluate_model)

    @card(type="blank", id="evaluation")
    @step
    def evaluate_model(self, inputs):
        """The sweep's join: take the best candidate (validation AP50), then its COCO mAP on the
        TEST split (pycocotools), logged to W&B, shown on the card."""
        self._take_best_candidate(inputs)
        from flow_support import (
            data_folder,
            evaluation_card,
            fail_if_injected,
            predictions_as_lists,
            run_dir_for,
            unpack_run,
        )

        from detector.pipeline import evaluate_run

        fail_if_injected(current.step_name)
        run_dir = unpack_run(self.trained_run, run_dir_for(current.flow_name, current.run_id))
        result = evaluate_run(run_dir, data_folder(self.data), wandb_mode=self.wandb_run_mode)
        self.eval_result = result.to_dict()
        self.y_pred = predictions_as_lists(result, self.class_names)
        self.confidences = [score for image in self.y_pred for score in image["confidences"]]
        title = f"DetectorFlow {current.run_id}: {self.trained_config}"
        provenance = getattr(self, "envtiers_provenance", None)
        current.card["evaluation"].extend(evaluation_card(result, title=title, provenance=provenance))
        if len(self.sweep_results) > 1:
            from sweep_support import sweep_card

            chosen = self.sweep_choice["index"]
            current.card["evaluation"].extend(sweep_card(self.sweep_results, chosen=chosen, plot_dir=run_dir / "eval"))
        print(f"mAP {result.ap:.3f}, AP50 {result.ap50:.3f}, AP75 {result.ap75:.3f} on {result.num_images} images")
        self.next(self.deploy)

    @step
    def deploy(self):
        """Export (SavedModel + model.tar.gz), deploy, smoke-test `/invocations`."""
        import os
        from pathlib import Path

        from flow_support import keep_in_s3, run_dir_for, unpack_run

        from detector.pipeline import deploy_run
        from envtiers.runtime import scheduler_of

        run_dir = unpack_run(self.trained_run, run_dir_for(current.flow_name, current.run_id))
        deployed = deploy_run(run_dir, target=self.deploy_target, sagemaker=self._sagemaker_settings())
        if self.deploy_target == "local" and scheduler_of(os.environ) != "local":
            # A remote task's disk goes with its container: keep model.tar.gz in S3, by run.
            deployed["model_location"] = keep_in_s3(Path(deployed["model_location"]), run=self)
        self.model_location = deployed["model_location"]
        self.model_sha256 = deployed["model_sha256"]
        self.endpoint_url = deployed["endpoint_url"]
        self.smoke_test = deployed["smoke_test"]
        self.deployed_candidate = self.sweep_choice["pathspec"]  # the sweep's winner (the only one without --sweep)
        print(f"model: {self.model_location}\nendpoint: {self.endpoint_url} (smoke test: {self.smoke_test})")
        self.next(self.end)

    @step
    def end(self):
        print(f"DetectorFlow {current.run_id} in tier {getattr(self, 'envtiers_tier', 'local')}:")
        print(f"  AP50 {self.eval_result['ap50']}, model {self.model_location}")
        print(f"  card: python flows/detector_flow.py card view --id evaluation {current.run_id}/evaluate_model")

    def _take_best_candidate(self, inputs):
        """Keep every candidate's validation metrics; merge only the winner's artifacts."""
        from sweep_support import choose

        self.sweep_results = [inp.candidate_result for inp in inputs]
        best = choose(self.sweep_results)
        self.sweep_choice = best.to_dict()
        winner = next(inp for inp in inputs if inp.candidate_result["index"] == best.index)
        self.merge_artifacts([winner])
        if hasattr(winner, "envtiers_provenance"):  # where the winner's start and training ran
            self.envtiers_provenance = {**winner.envtiers_provenance, **getattr(self, "envtiers_provenance", {})}
        if len(self.sweep_results) > 1:
            print(f"chose candidate {best.index} ({best.pathspec}): validation AP50 {best.ap50}")

    def _sagemaker_settings(self):
        return {
            "endpoint_name": self.sagemaker_endpoint,
            "role_arn": self.sagemaker_role_arn,
            "bucket": self.sagemaker_bucket,
            "image_uri": self.sagemaker_image_uri,
        }


if __name__ == "__main__":
    DetectorFlow()
