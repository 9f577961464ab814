"""Where the latest DetectorFlow run's results are: read back with the Client API, as from a notebook.

    python flows/show_run.py [RUN_ID]      # make run calls it after the flow

Prints the run's status, where each step ran (scheduler, job, host, tier, lock, image), the
metrics, the model and endpoint, and saves the evaluation card next to the run's files
(runs/DetectorFlow/<run id>/card.html).
"""

from __future__ import annotations

import sys
from pathlib import Path

from metaflow import Flow, Run
from metaflow.cards import get_cards
from metaflow.plugins.cards.exception import CardNotPresentException

from envtiers.runtime import describe

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    run = Run(f"DetectorFlow/{argv[0]}") if argv else Flow("DetectorFlow").latest_run
    print(f"DetectorFlow/{run.id}: {'succeeded' if run.successful else 'did not finish'}")
    for step in reversed(list(run)):
        data = step.task.data
        if "envtiers_runtime" in step.task:
            where = describe(data.envtiers_runtime)
        elif "envtiers_tier" in step.task:
            where = f"tier {data.envtiers_tier}, lock {data.envtiers_lock_hash[:19]}, {data.envtiers_python}"
        else:
            where = "no tier"
        print(f"  {step.id:<26} {where}")
    if not run.successful:
        print("  fix the failure, then: make resume (reruns the failed step and those after it;")
        print("  REMOTE=batch too when the run used it),")
        print("  or make run again when a parameter (RUN_ARGS) was wrong: resume keeps the parameters")
        return 1
    evaluation = run["evaluate_model"].task
    result = evaluation.data.eval_result
    print(f"  mAP {result['ap']:.3f}  AP50 {result['ap50']:.3f}  AP75 {result['ap75']:.3f}")
    sweep = evaluation.data.sweep_results if "sweep_results" in evaluation else []  # runs from before the sweep
    if len(sweep) > 1:
        chosen = evaluation.data.sweep_choice["index"]
        print(f"  sweep:    {len(sweep)} candidates, deployed candidate {chosen} (best validation AP50)")
        for entry in sweep:
            ap50 = "failed" if entry["status"] != "ok" else f"val AP50 {entry['ap50']}"
            print(f"    {'*' if entry['index'] == chosen else ' '} {entry['index']} {entry['overrides']}: {ap50}")
    deploy = run["deploy"].task.data
    print(f"  model:    {deploy.model_location}")
    print(f"  endpoint: {deploy.endpoint_url} (smoke-tested, then stopped: {deploy.smoke_test})")
    try:
        cards = get_cards(evaluation, id="evaluation")
    except CardNotPresentException:
        # A remote task with Metaflow's local metadata: the card renders inside the task, from the
        # task's metadata, which reaches the launcher only when the task ends (Metaflow #588).
        print("  card:     not rendered (a remote task with local metadata cannot read itself back; with")
        print("            METAFLOW_SERVICE_URL it renders); its tables: eval_result, envtiers_provenance")
        cards = None
    if cards is not None and len(cards):
        path = PROJECT_ROOT / "runs" / "DetectorFlow" / run.id / "card.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(cards[0].get())
        print(f"  card:     {path}")
    print(f"  artifacts: Flow('DetectorFlow')['{run.id}']['evaluate_model'].task.data.y_pred, ... (Client API)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
