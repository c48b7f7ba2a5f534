"""The population's load signature: what people's backs look like to the strip, pooled.

A user who has never calibrated has no signature of their own; and one calibration
carries the error of how the person held its landmarks. The population signature is
what calibrated sessions of people like the user (in stature and sex: the body's width
sets how the load spreads over the roller's fixed bands) taught, pooled
(``Signature.merge``: the spread between people is part of its variance, so it is
believed only where people agree, chiefly at the end of the rib cage, where the lumbar
lordosis lifts the spine off the roller). It ships with the package
(``data/population_signature.json``) and is rebuilt by ``python -m
host.analysis.population``: calibrated sessions of simulated people drawn with seeds
apart from the benchmark's, each analysed as a new user would be (so the levels it
learns come from each person's own calibration, never from the simulator's truth).
A real product would rebuild it from its users' calibrated sessions the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
from functools import cache
from pathlib import Path

from host.analysis.signature import Signature

DATA = Path(__file__).resolve().parent / "data" / "population_signature.json"
"""Where the shipped population signature lives."""
TRAINING_SEEDS = range(1001, 1049)
"""Seeds of the simulated people it is learned from (the benchmark uses 1..)."""


NEIGHBOURS = 12
"""How many of the training people most like the user (stature, sex) are pooled."""


@cache
def _people() -> tuple[tuple[float, str | None, Signature], ...]:
    """(stature m, sex, signature) of each training person in the shipped file."""
    try:
        data = json.loads(DATA.read_text())
        return tuple((float(p["stature_m"]), p.get("sex"), Signature.from_json(p["signature"]))
                     for p in data["people"])
    except (OSError, ValueError, KeyError, TypeError):
        return ()


@cache
def population_signature(stature_m: float | None = None, sex: str | None = None
                         ) -> Signature | None:
    """The pooled signature of the ``NEIGHBOURS`` training people closest to the user in
    stature (the body's width, and so the load's spread across the roller's fixed bands,
    goes with it), of the same sex when known; all of them without a stature. None if
    the shipped file is missing or malformed."""
    people = _people()
    if not people:
        return None
    pool = [p for p in people if sex is None or p[1] == sex] or list(people)
    if stature_m is not None:
        pool = sorted(pool, key=lambda p: abs(p[0] - stature_m))[:NEIGHBOURS]
    pooled = Signature()
    for _, _, sig in pool:
        pooled.merge(sig)
    return pooled


def learn_one(args: tuple[int, float]) -> dict:
    """One training person: a calibrated simulated session analysed as a new user;
    returns their stature and sex (as they would give them) and the signature their
    calibration taught (JSON)."""
    from firmware.protocol import quantise
    from firmware.sim.rig import SimRoller
    from firmware.sim.scenario import default_scenario
    from host.analysis.profile import UserModel
    from host.analysis.session import analyze

    seed, duration = args
    base = default_scenario()
    scenario = dataclasses.replace(base, routine=dataclasses.replace(base.routine,
                                                                     calibration=True))
    roller = SimRoller(scenario, seed)
    frames = []
    roller.add_sink(lambda f: frames.append(quantise(f, roller.config.zones.count)))
    roller.run(until=min(duration, roller.duration_s))
    roller.close()
    person = roller.world.person
    user = UserModel(stature_m=round(person.stature_m, 2), sex=person.sex)
    _, analyzer = analyze(frames, user, population=None)
    return {"stature_m": user.stature_m, "sex": user.sex,
            "signature": analyzer.learned_model().signature.to_json()}


def train(seeds: range = TRAINING_SEEDS, duration_s: float = 300.0, jobs: int | None = None
          ) -> list[dict]:
    """What calibrated sessions of the ``seeds`` people taught, one entry a person."""
    work = [(s, duration_s) for s in seeds]
    jobs = jobs or os.cpu_count() or 1
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        return pool.map(learn_one, work)


def main() -> None:
    """``python -m host.analysis.population [--people N] [--duration S]``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--people", type=int, default=len(TRAINING_SEEDS))
    p.add_argument("--duration", type=float, default=300.0)
    p.add_argument("--out", type=Path, default=DATA)
    args = p.parse_args()
    seeds = range(TRAINING_SEEDS.start, TRAINING_SEEDS.start + args.people)
    people = train(seeds, args.duration)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"people": people}) + "\n")
    os.replace(tmp, args.out)
    print(f"{args.out}: {len(people)} people")


if __name__ == "__main__":
    main()
