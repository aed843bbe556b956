"""Is the synthetic world's ``next_event`` label readable at all? A classifier on the true state, not on pixels.

The probe task of ``benchmarks/pretrained_model.py`` (8-frame clips, 64 px, one moving object, label: what happens
to it in the 4 frames after the clip) with the same seeds: a gradient-boosted classifier is trained on the state
at the clip's end (object 0's last position, its last two velocities, its radius and its distances to the far
walls; with ``full``, also the other objects' offsets and radii) of the ``val`` scenes and tested on the ``test``
scenes. It bounds what a probe on perfect features could reach, so a probe at the majority class is not the task's
fault.

    python benchmarks/next_event_oracle.py            # object 0 alone, then with the other objects
"""

from __future__ import annotations

import argparse

import numpy as np

from vjepa2.data.synthetic import SyntheticWorld, WorldConfig, split_seeds


def state_features(world: SyntheticWorld, seeds: np.ndarray, full: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(features [N, F], next_event labels [N])`` of the scenes of ``seeds`` at the end of their clip."""
    last = world.cfg.frames - 1
    size = world.cfg.resolution
    rows, labels = [], []
    for seed in seeds:
        scene = world.scene(int(seed))
        p = scene.positions  # [S, n, 2]
        x = p[last, 0]
        row = [*x, *(x - p[last - 1, 0]), *(p[last - 1, 0] - p[last - 2, 0]), scene.radius[0], *(size - x)]
        if full:
            others = np.full((world.cfg.max_objects - 1, 3), -100.0)  # absent objects: far away
            for j in range(1, len(scene.radius)):
                others[j - 1] = [*(p[last, j] - x), scene.radius[j]]
            row += list(others.ravel())
        rows.append(row)
        labels.append(scene.labels["next_event"])
    return np.array(rows), np.array(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-clips", type=int, default=3000)
    parser.add_argument("--test-clips", type=int, default=1000)
    args = parser.parse_args()
    from sklearn.ensemble import HistGradientBoostingClassifier

    world = SyntheticWorld(WorldConfig(resolution=64, frames=8, one_mover_prob=1.0))  # the probe's world
    train, test = split_seeds("val", args.train_clips), split_seeds("test", args.test_clips)
    print("| true-state features | next event accuracy | majority class |\n|---|---|---|")
    for full in (False, True):
        x_train, y_train = state_features(world, train, full)
        x_test, y_test = state_features(world, test, full)
        clf = HistGradientBoostingClassifier(max_iter=300, random_state=0).fit(x_train, y_train)
        accuracy = float((clf.predict(x_test) == y_test).mean())
        majority = np.bincount(y_test).max() / len(y_test)
        name = "object 0 and the other objects" if full else "object 0 alone"
        print(f"| {name} | {100 * accuracy:.1f}% | {100 * majority:.1f}% |", flush=True)


if __name__ == "__main__":
    main()
