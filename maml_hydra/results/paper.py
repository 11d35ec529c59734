"""The MAML paper's own published numbers (Finn et al. 2017), written once.

Locomotion: its code's result files (cbfinn/maml_rl, ``icml/icml_<family>_results_<variant>.pkl``;
../shared/docs/field-notes.md section 9), the mean over its 40 goals after 0..3 gradient steps
and the standard error over those goals after one step. They are of the paper's problem
(``env.dynamics=rllab``) and are compared with runs on that problem only.
"""

from __future__ import annotations

LOCOMOTION = {
    "halfcheetah_dir": {
        "maml": ([-50.69, 293.19, 313.48, 315.65], 8.7),
        "pretrained": ([-43.03, -24.75, -12.85, 19.57], 4.8),
        "random": ([-35.73, 21.83, 62.32, 86.18], 1.5),
        "oracle": ([442.69], None),
    },
    "halfcheetah_vel": {
        "maml": ([-129.53, -78.57, -66.62, -60.78], 5.0),
        "pretrained": ([-158.00, -135.39, -128.47, -133.61], 7.7),
        "random": ([-254.83, -254.33, -246.79, -230.83], 17.7),
        "oracle": ([-54.47], None),
    },
    "ant": {
        "maml": ([30.58, 96.74, 100.06, 101.41], 10.6),
        "pretrained": ([-1.83, 6.11, 8.47, 9.47], 17.5),
        "random": ([-78.64, -62.81, -48.55, -35.56], 17.7),
        "oracle": ([107.89], None),
    },
    "ant_dir": {  # MAML trained at half the paper's batch: its maml_batch20 result
        "maml": ([12.91, 434.36, 425.63, 411.75], None),
        "pretrained": ([3.16, 1.27, 6.51, 6.86], 6.9),
        "random": ([3.11, 9.25, 15.96, 26.11], 2.2),
        "oracle": ([524.80], None),
    },
}
# The paper's Ant direction at its full batch (40 episodes per task), the figure's MAML; the
# presets train at half of it, and are compared with the half-batch result above.
ANT_DIR_FULL_BATCH_MAML = ([8.66, 499.15, 500.68, 499.11], 16.4)
# The s.e. of the paper's maml_batch20 Ant-direction result is not published with it: that of
# its full-batch MAML stands in for it.
SE_STAND_IN = {"ant_dir": (ANT_DIR_FULL_BATCH_MAML[1], "its full-batch MAML's")}

# 2D navigation, Table 4: MAML after 0..3 gradient steps (its goals: the original script's).
NAVIGATION_MAML = [-40.41, -11.68, -3.33, -3.23]


def gap_share(family: str) -> float:
    """The paper's own share of the pretrained-to-oracle gap that MAML closes after one step
    (Ant direction: its half-batch MAML, the presets' reference)."""
    numbers = LOCOMOTION[family]
    maml, pretrained, oracle = (numbers[v][0] for v in ("maml", "pretrained", "oracle"))
    return (maml[1] - pretrained[1]) / (oracle[0] - pretrained[1])
