"""Stage `summary`: the run's headline numbers, the first columns of `dvc exp show`.

Test accuracy and best validation accuracy of the head and of the fine-tuned model, and the
run's wall time from `fetch` to `evaluate` in minutes, gathered from the stages' own records
into `metrics/summary.json`, the pipeline's only metrics file. The records stay outputs of
their stages (the study and the paper read them), so `dvc exp show` and `dvc metrics diff` show
these few numbers and the params. The minutes differ from run to run; the rest is the same for
the same params.
"""

from __future__ import annotations

from transfer.runtime.files import read_json, write_json
from transfer.runtime.paths import (
    EVALUATION,
    FINETUNE_LIVE,
    RUN_STAGES,
    STAGE_TIMES,
    SUMMARY,
    TRAIN_LIVE,
)
from transfer.runtime.stage import run_stage


def headline() -> dict:
    """Test and best validation accuracy of the fine-tuned model (the exported one) and of the
    head (validation None where fine-tuning was skipped), and the minutes from fetch to
    evaluate, in the order `dvc exp show` shows them: its first metric column is never
    collapsed, so the test accuracy shows at any terminal width."""
    tested = read_json(EVALUATION)
    head, tuned = (read_json(live / "metrics.json") for live in (TRAIN_LIVE, FINETUNE_LIVE))
    seconds = sum(read_json(STAGE_TIMES / f"{stage}.json")["seconds"] for stage in RUN_STAGES)
    return {"test_acc": tested["finetuned"]["accuracy"],
            "test_acc_head": tested["head"]["accuracy"],
            "val_acc": tuned.get("best_val_accuracy"),
            "val_acc_head": head["best_val_accuracy"],
            "minutes": round(seconds / 60, 2)}


def main() -> None:
    """Write metrics/summary.json and print it on one line."""
    numbers = headline()
    write_json(SUMMARY, numbers, sort_keys=False)
    print(f"summary: test accuracy {numbers['test_acc']:.4f} fine-tuned, "
          f"{numbers['test_acc_head']:.4f} head; {numbers['minutes']:.1f} min from fetch to "
          f"evaluate")


if __name__ == "__main__":
    run_stage(main)
