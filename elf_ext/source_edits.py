"""The edits that make ELF 1f79017 build and run on Python 3.11, torch 2.13, pybind11 3 and ALE 0.12, as
`lth_deps.edits.Edit`s (applied to a private copy; one that does not match stops the build naming file and reason).
Facts behind them: ../shared/third_party/ELF-BUILD-NOTES.md.
"""
from typing import List

from lth_deps.edits import MARK, Edit

ELF_COMMIT = "1f79017"  # the ELF these edits are written for


def _cmake_comment(reason: str) -> str:
    return f"# {MARK}: {reason}\n"


EDITS: List[Edit] = [
    # ---- C++ build
    Edit("elf/CMakeLists.txt",
         "execute_process(COMMAND git rev-parse HEAD\n\tOUTPUT_VARIABLE GIT_COMMIT_HASH)\n"
         "execute_process(COMMAND git diff-index --quiet HEAD --\n\tRESULT_VARIABLE GIT_STAGED)\n"
         "string(STRIP ${GIT_COMMIT_HASH} GIT_COMMIT_HASH)\n",
         _cmake_comment("the tree is a copy without .git: git would fail (and string(STRIP) of nothing with it) "
                        "or report an enclosing repository") + "set(GIT_COMMIT_HASH unknown)\nset(GIT_STAGED 1)\n",
         "outside a git checkout string(STRIP) of the empty hash stops CMake"),
    Edit("vendor/CMakeLists.txt", "add_subdirectory(pybind11)",
         _cmake_comment("the vendored pybind11 2.3.dev0 does not compile against Python 3.11; "
                        "atari/CMakeLists.txt uses pybind11 from PyPI"),
         "vendored pybind11 is too old for Python 3.11"),
    Edit("atari/CMakeLists.txt", "set(CMAKE_CXX_STANDARD 11)",
         _cmake_comment("ALE 0.12 headers need C++17 (<filesystem>, std::optional)") + "set(CMAKE_CXX_STANDARD 17)",
         "ALE 0.12 headers need C++17"),
    Edit("atari/CMakeLists.txt", 'set(CMAKE_CXX_FLAGS_RELEASE "-O3 -march=native")',
         _cmake_comment("-march=native makes a wheel that crashes on older CPUs") + 'set(CMAKE_CXX_FLAGS_RELEASE "-O3")',
         "-march=native is not portable: the wheel is cached and may be used on another machine"),
    Edit("atari/CMakeLists.txt", "# add ALE\n",
         _cmake_comment("pybind11 from PyPI (pybind11_DIR given by the builder), found here so that its targets "
                        "are visible to atari_game") + "find_package(pybind11 CONFIG REQUIRED)\n\n# add ALE\n",
         "use pip's pybind11 instead of the vendored one"),
    Edit("atari/atari_game_specific.h", "#include <ale/ale_interface.hpp>\n",
         "#include <ale/ale_interface.hpp>\n"
         f"// {MARK}: ALE 0.12 moved these into namespace ale\n"
         "using ale::ALEInterface;\nusing ale::Action;\nusing ale::reward_t;\n",
         "ALEInterface, Action and reward_t moved into namespace ale"),
    Edit("elf/comm_template.h", "_pool.push([i, this, &game_start_func](int){",
         f"// {MARK}: by value: a reference to Start's argument dangles in threads that start after it returns\n"
         "            _pool.push([i, this, game_start_func](int){",
         "the game threads called a std::function captured by reference from Start's stack frame: a thread that "
         "starts after Start returned (a loaded machine) calls a destroyed object and segfaults"),
    Edit("atari/atari_game.cc", '  _ale->setBool("showinfo", false);\n',
         f'  // {MARK}: ALE 0.12 has no "showinfo" setting and throws on unknown keys\n',
         "setting the removed showinfo key throws at run time"),
    # ---- Python 3.7+: `async` is a keyword (torch renamed the argument non_blocking)
    Edit("elf/utils_elf.py", r"\basync\b", "non_blocking", "`async` is a keyword since Python 3.7",
         count=4, regex=True),
    Edit("rlpytorch/runner/parameter_server.py", r"\basync\b", "non_blocking",
         "`async` is a keyword since Python 3.7", count=1, regex=True),
    # ---- installed as packages: no source-tree sys.path hacks
    Edit("rlpytorch/trainer/trainer.py",
         "sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'elf'))\nimport utils_elf\n",
         f"import torch  # {MARK}: elf is an installed package; torch for no_grad below\nfrom elf import utils_elf\n",
         "the path hack assumes the source tree and would import utils_elf a second time under another name"),
    Edit("rlpytorch/runner/parameter_server.py",
         "sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'elf'))\nimport utils_elf\n",
         f"from elf import utils_elf  # {MARK}: elf is an installed package\n",
         "the path hack assumes the source tree and would import utils_elf a second time under another name"),
    # ---- torch 2
    Edit("rlpytorch/trainer/trainer.py", "        state_curr = m.forward(batch.hist(0))\n",
         f"        with torch.no_grad():  # {MARK}: Variable(volatile=True) is a no-op since torch 0.4\n"
         "            state_curr = m.forward(batch.hist(0))\n",
         "the actor's forward built an autograd graph: volatile Variables no longer exist"),
    Edit("elf/utils_elf.py", "                    bk[:] = v\n",
         f"                    # {MARK}: torch 2 no longer copies same-size tensors of other shapes (V is (B,1),\n"
         "                    # its reply slot (1,B)); reshape when the element counts match\n"
         "                    bk[:] = v.reshape(bk.shape) if torch.is_tensor(v) and v.numel() == bk.numel() else v\n",
         "Batch.copy_from: torch 2 refuses to copy (B,1) into (1,B)"),
    Edit("rlpytorch/methods/actor_critic.py", "err.data[0]", "err.item()", ".data[0] of a 0-dim loss fails"),
    Edit("rlpytorch/methods/rnn_actor_critic.py", "err.data[0]", "err.item()", ".data[0] of a 0-dim loss fails"),
    Edit("rlpytorch/methods/q_learning.py", "err.data[0]", "err.item()", ".data[0] of a 0-dim loss fails"),
    Edit("rlpytorch/methods/policy_gradient.py", r"\.data\[0\]", ".item()", ".data[0] of a 0-dim loss fails",
         count=4, regex=True),
    Edit("rlpytorch/methods/value_matcher.py", "value_err.data[0]", "value_err.item()",
         ".data[0] of a 0-dim loss fails"),
    Edit("rlpytorch/methods/value_matcher.py", "feed(V.data[0])", "feed(V.data[0].item())",
         "stats expect a number, not a one-element tensor"),
    Edit("rlpytorch/model_base.py", "data = torch.load(filename)", "data = torch.load(filename, weights_only=False)",
         "torch.load is weights-only since 2.6; ELF's own checkpoints pickle their args"),
    Edit("rlpytorch/model_loader.py", "model.cuda(device_id=args.gpu)", "model.cuda(args.gpu)",
         "Module.cuda has no device_id argument"),
    Edit("rlpytorch/model_interface.py", "self.models[key].cuda(device_id=gpu_id)", "self.models[key].cuda(gpu_id)",
         "Module.cuda has no device_id argument"),
    # ---- ROMs: ale-py's wheel ships them
    Edit("atari/game.py", '("rom_dir", os.path.dirname(__file__)),',
         '("rom_dir", _ale_roms_dir()),', "the ROMs are in ale-py's wheel (ale_py/roms), not next to game.py"),
    Edit("atari/game.py", "from rlpytorch import ArgsProvider\n",
         "from rlpytorch import ArgsProvider\n\n\n"
         "def _ale_roms_dir():\n"
         f'    """{MARK}: ale-py\'s ROM folder, found without importing ale_py (its own ALE would load)."""\n'
         "    import importlib.util\n"
         '    spec = importlib.util.find_spec("ale_py")\n'
         "    if spec is None or not spec.submodule_search_locations:\n"
         "        return os.path.dirname(__file__)\n"
         '    return os.path.join(list(spec.submodule_search_locations)[0], "roms")\n',
         "default --rom_dir: ale-py's ROM folder"),
]

