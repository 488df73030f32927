"""Built-in ``progress`` plugin: a PAV-style step reward, each step credited with how much it moved a
frozen prover's chance of reaching a correct answer (Setlur et al. 2024, "Rewarding Progress")."""

from grpo_plugins import hookimpl, require


@hookimpl
def register_rewards(register):
    require("torch", "transformers", install="pip install 'grpo-plugins[prm]'")
    from .reward import ProgressReward

    register(ProgressReward)
