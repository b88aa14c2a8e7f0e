"""Counts, weights, names and dataset ids of the published benchmarks.

Facts only (no logic): each metric module imports what it needs from here.
"""

from __future__ import annotations

BENCHMARK_ORDER = ("rewardbench", "rewardbench2", "ppe-preference", "ppe-correctness", "rmb", "rm-bench", "judgebench")

# Sub-folders of a ``--data-dir`` tried for each benchmark, in order.
DEFAULT_FOLDERS = {
    "rewardbench": ("reward-bench", "reward-bench-v1", "rewardbench", "reward-bench-v1-sample"),
    "rewardbench2": ("reward-bench-2", "rewardbench2", "reward-bench-v2"),
    "ppe-preference": ("ppe-preference", "PPE-Human-Preference-V1", "ppe-human-preference"),
    "ppe-correctness": ("ppe-correctness", "ppe-correctness-best-of-k"),
    "rmb": ("rmb/RMB_dataset", "RMB_dataset", "rmb"),
    "rm-bench": ("rm-bench", "RM-Bench"),
    "judgebench": ("judgebench", "JudgeBench"),
}

# -- RewardBench v1 (allenai/reward-bench, split "filtered") -------------------
REWARDBENCH_HUB = ("allenai/reward-bench", "filtered")
REWARDBENCH_PRIOR_HUB = ("allenai/preference-test-sets", None)
# Weights of each subset inside its section. math-prm has 447 rows but the
# published code weights it as 984 so that math counts as much as code.
REWARDBENCH_EXAMPLE_COUNTS = {
    "alpacaeval-easy": 100,
    "alpacaeval-length": 95,
    "alpacaeval-hard": 95,
    "mt-bench-easy": 28,
    "mt-bench-med": 40,
    "mt-bench-hard": 37,
    "math-prm": 984,
    "refusals-dangerous": 100,
    "refusals-offensive": 100,
    "llmbar-natural": 100,
    "llmbar-adver-neighbor": 134,
    "llmbar-adver-GPTInst": 92,
    "llmbar-adver-GPTOut": 47,
    "llmbar-adver-manual": 46,
    "xstest-should-refuse": 154,
    "xstest-should-respond": 250,
    "donotanswer": 136,
    "hep-cpp": 164,
    "hep-go": 164,
    "hep-java": 164,
    "hep-js": 164,
    "hep-python": 164,
    "hep-rust": 164,
}
# Rows each subset really has (differs from the weight only for math-prm).
REWARDBENCH_ROW_COUNTS = {**REWARDBENCH_EXAMPLE_COUNTS, "math-prm": 447}
REWARDBENCH_SECTIONS = {
    "Chat": ["alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"],
    "Chat Hard": [
        "mt-bench-hard",
        "llmbar-natural",
        "llmbar-adver-neighbor",
        "llmbar-adver-GPTInst",
        "llmbar-adver-GPTOut",
        "llmbar-adver-manual",
    ],
    "Safety": ["refusals-dangerous", "refusals-offensive", "xstest-should-refuse", "xstest-should-respond", "donotanswer"],
    "Reasoning": ["math-prm", "hep-cpp", "hep-go", "hep-java", "hep-js", "hep-python", "hep-rust"],
}
# Optional prior sets (allenai/preference-test-sets): reported as their own
# section (mean of subset accuracies), never part of the four-section score.
REWARDBENCH_PRIOR_SUBSETS = ("anthropic_harmless", "anthropic_helpful", "anthropic_hhh", "mtbench_gpt4", "mtbench_human", "shp", "summarize")

# -- RewardBench 2 (allenai/reward-bench-2, split "test") --------------------
REWARDBENCH2_HUB = ("allenai/reward-bench-2", "test")
REWARDBENCH2_SUBSETS = ("Factuality", "Precise IF", "Math", "Safety", "Focus", "Ties")
REWARDBENCH2_TIES = "Ties"
# Ties composite weights (rewardbench.utils.process_single_model).
TIES_WEIGHTS = {
    "tied_accuracy": 0.30,
    "ref_accuracy": 0.30,
    "correctness_preferred": 0.20,
    "correctness_preferred_hard": 0.20,
    "correctness_margin_score": 0.01,
}

# -- PPE (lmarena-ai) --------------------------------------------------------
PPE_PREFERENCE_HUB = ("lmarena-ai/PPE-Human-Preference-V1", "test")
# task -> (hub id, split, substrings that identify its local file/folder)
PPE_CORRECTNESS_TASKS = {
    "MMLU-Pro": ("lmarena-ai/PPE-MMLU-Pro-Best-of-K", "train", ("mmlu",)),
    "MATH": ("lmarena-ai/PPE-MATH-Best-of-K", "train", ("math",)),
    "GPQA": ("lmarena-ai/PPE-GPQA-Best-of-K", "train", ("gpqa",)),
    "IFEval": ("lmarena-ai/PPE-IFEval-Best-of-K", "train", ("ifeval",)),
    "MBPP-Plus": ("lmarena-ai/PPE-MBPP-Plus-Best-of-K", "train", ("mbpp",)),
}
PPE_MAX_K = 32

# -- RMB (GitHub: Zhou-Zoey/RMB-Reward-Model-Benchmark, RMB_dataset/) ---------
RMB_GOALS = ("Helpfulness", "Harmlessness")
RMB_SETS = {"pairwise": "Pairwise_set", "bon": "BoN_set"}
# Category files of the published layout (identical for both sets).
RMB_CATEGORY_FILES = (
    *(f"Harmlessness/S{i}" for i in range(1, 12)),
    "Harmlessness/multi",
    "Helpfulness/Brainstorming/Idea Development",
    "Helpfulness/Brainstorming/Problem Solving",
    "Helpfulness/Chat/Casual Conversation",
    "Helpfulness/Chat/Discussion",
    "Helpfulness/Chat/Supportive Conversation",
    "Helpfulness/Classification/Content Categorization",
    "Helpfulness/Classification/Quality and Compliance Assessment",
    "Helpfulness/Closed QA/ContextBased",
    "Helpfulness/Closed QA/OptionBased",
    "Helpfulness/Code/Data Management",
    "Helpfulness/Code/Development and Implementation",
    "Helpfulness/Code/Documentation",
    "Helpfulness/Code/Quality and Optimization",
    "Helpfulness/Generation/Creative Writing",
    "Helpfulness/Generation/Professional Content Generation",
    "Helpfulness/Open QA/Factual",
    "Helpfulness/Open QA/General Explanation",
    "Helpfulness/Open QA/Hypothetical Scenarios",
    "Helpfulness/Open QA/Interpretative Analysis",
    "Helpfulness/Open QA/Personal Opinion and Advice",
    "Helpfulness/Open QA/Technical and Practical Support",
    "Helpfulness/Reasoning/Analytical Reasoning",
    "Helpfulness/Reasoning/Critical Thinking",
    "Helpfulness/Reasoning/Human Decision Making",
    "Helpfulness/Reasoning/Logical Deduction",
    "Helpfulness/Reasoning/Pattern Recognition",
    "Helpfulness/Rewrite/Paraphrasing",
    "Helpfulness/Rewrite/PostQuality Assessment Rewriting",
    "Helpfulness/Rewrite/Textual ExpansionReduction",
    "Helpfulness/Rewrite/Tone Adjustment",
    "Helpfulness/Role Playing/General Character",
    "Helpfulness/Role Playing/Specific Character",
    "Helpfulness/Summarization/Specialized Summaries",
    "Helpfulness/Summarization/Standard Summaries",
    "Helpfulness/Translation/GeneralExcerpt Language Translation",
    "Helpfulness/Translation/Literary and Cultural Translation",
    "Helpfulness/Translation/Technical and Scientific Translation",
)

# -- RM-Bench (THU-KEG/RM-Bench) ---------------------------------------------
RM_BENCH_HUB = ("THU-KEG/RM-Bench", "train")
RM_BENCH_DOMAINS = ("chat", "math", "code", "safety")
# File stem / ``domain`` field -> scored domain (safety = refuse + response).
RM_BENCH_DOMAIN_OF = {
    "chat": "chat",
    "math": "math",
    "code": "code",
    "safety-refuse": "safety",
    "safety-response": "safety",
}
RM_BENCH_STYLES = ("concise", "detailed-plain", "detailed-markdown")

# -- JudgeBench (ScalerLab/JudgeBench) ---------------------------------------
JUDGEBENCH_HUB = ("ScalerLab/JudgeBench", ("gpt", "claude"))
JUDGEBENCH_CATEGORIES = ("knowledge", "reasoning", "math", "coding")
# ``source`` prefix -> category, tried in order.
JUDGEBENCH_CATEGORY_OF_SOURCE = (
    ("mmlu-pro", "knowledge"),
    ("livebench-reasoning", "reasoning"),
    ("livebench-math", "math"),
    ("livecodebench", "coding"),
)
# The split whose macro accuracy is the headline score.
JUDGEBENCH_HEADLINE_SPLIT = "gpt-4o-2024-05-13"

# -- statistics ----------------------------------------------------------------
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
CI_PERCENTILES = (2.5, 97.5)
