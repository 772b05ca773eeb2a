"""The Space's app: the widget of evaluate's `launch_gradio_widget`, written for gradio 6.

evaluate 0.4.6's `launch_gradio_widget` still calls `gr.inputs.Dataframe`, which gradio >= 4 removed,
so this file builds the same interface (a table of predictions/references in, the metric's dict out,
the card below) with the current gradio API.
"""

from pathlib import Path

import evaluate
import gradio as gr

HERE = Path(__file__).resolve().parent
module = evaluate.load(str(HERE / "uar.py"))


def compute(table, average: str, return_per_class: bool, return_confusion_matrix: bool) -> dict:
    rows = table.values.tolist() if hasattr(table, "values") else list(table)
    rows = [r for r in rows if all(str(v).strip() != "" for v in r[:2])]
    if not rows:
        raise gr.Error("Fill in at least one row of predictions and references (class ids).")
    try:
        predictions = [int(float(r[0])) for r in rows]
        references = [int(float(r[1])) for r in rows]
        return module.compute(
            predictions=predictions,
            references=references,
            average=average,
            return_per_class=return_per_class,
            return_confusion_matrix=return_confusion_matrix,
        )
    except ValueError as err:
        raise gr.Error(str(err)) from err


card = (HERE / "README.md").read_text(encoding="utf-8").split("---", 2)[-1]
demo = gr.Interface(
    fn=compute,
    inputs=[
        gr.Dataframe(
            headers=["predictions", "references"],
            datatype=["number", "number"],
            value=[[0, 0], [1, 0], [1, 1], [1, 1], [2, 2]],
            label="class ids",
        ),
        gr.Radio(["balanced", "macro"], value="balanced", label="average"),
        gr.Checkbox(label="return per-class recall"),
        gr.Checkbox(label="return confusion matrix"),
    ],
    outputs=gr.JSON(label="result"),
    title="Metric: UAR (Unweighted Average Recall)",
    description=module.info.description,
    article=card,
)

if __name__ == "__main__":
    demo.launch()
