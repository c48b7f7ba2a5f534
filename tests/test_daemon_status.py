"""The daemon's live status: whether the roller is buzzing."""

import asyncio

from firmware.protocol import Frame, FrameFlag
from host.analysis.session import Update
from host.analysis.warnings import Cue
from host.daemon import RollerKeeper
from host.store import Store

C = FrameFlag.IN_CONTACT


def frame(seq: int, flags: FrameFlag) -> Frame:
    return Frame(seq, seq * 0.01, 0.25, 0.0, 0.0, (50.0,) * 8, 400.0, flags, 1)


def test_buzzing_is_the_hosts_warning_or_the_rollers_fence_and_clears_with_both(tmp_path):
    asyncio.run(_buzzing(tmp_path))


async def _buzzing(tmp_path) -> None:
    with Store(tmp_path / "s.db") as store:
        profile = store.create_profile("ann", 1.70)
        keeper = RollerKeeper(store, None, "D9:B5:44:3F:29:4D", tmp_path, profile,
                              say=lambda _: None)
        keeper._update_status(frame(1, C | FrameFlag.BEYOND_FENCE), None)
        assert keeper.status.warning  # the roller's own fence
        keeper._update_status(frame(2, C), None)
        assert not keeper.status.warning  # back above its fence, no host warning
        keeper._send(Update(cues=[(0.03, Cue.LUMBAR)]))
        keeper._update_status(frame(3, C), None)
        assert keeper.status.warning  # the host's warning holds it on
        keeper._send(Update(cues=[(0.04, Cue.STOP)]))
        keeper._update_status(frame(4, C), None)
        assert not keeper.status.warning
        # The buzz commands to a roller not connected fail as logged faults.
        await asyncio.wait_for(asyncio.gather(*keeper._tasks, return_exceptions=True), 10)
