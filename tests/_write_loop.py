"""Helper for test_reliability: writes result files in a loop until it is killed.

Every version ``i`` of every file is self-describing, so the test can tell a complete
file from a torn one: the CSV has ROWS rows all carrying ``i``; the JSON holds ``i`` and
ROWS padding items; the PNG ends with its IEND chunk; the .keras zip passes its CRC
check. Prints "ready" once a full round of files exists.
"""

from __future__ import annotations

import sys
from itertools import count
from pathlib import Path

import numpy as np

ROWS = 50_000


def main(out: Path) -> None:
    import keras

    from kerasbn._io import write_json, write_text
    from kerasbn.plots import pyplot, save_figure
    from kerasbn.saving import save_model

    plt = pyplot()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(64), keras.layers.Dense(3)])
    for i in count():
        rows = "".join(f"{k},{k * 0.5},{i}\n" for k in range(ROWS))
        write_text(out / "history.csv", "row,value,version\n" + rows)
        write_json(out / "runs.json", {"version": i, "pad": list(range(ROWS // 10))})
        fig, ax = plt.subplots()
        ax.plot(np.arange(10) * i)
        save_figure(fig, out / "curves.png")
        model.layers[0].kernel.assign(np.full((4, 64), i, dtype="float32"))
        save_model(model, out / "models" / "m.keras", {"version": i})
        if i == 0:
            print("ready", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
