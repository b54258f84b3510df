"""Vocabulary of the routing set's pages (common words of each script, inline formulas) and the random
word runs and sentences drawn from it."""

from __future__ import annotations

import random


def _vocab(text: str) -> list[str]:
    return text.split()


LATIN = _vocab(
    "the of and to in is was for on that with as by at from data model page text layer system time result "
    "method analysis document report a I we it this which are be an or not have has can will table figure "
    "value number section process scanned printed archive record letter invoice contract survey measure"
)
CYRILLIC = _vocab(
    "и в на с по для это данные модель страница система время работа результат документ текст анализ"
)
GREEK = _vocab("και το η σελίδα κείμενο μοντέλο δεδομένα σύστημα χρόνος αποτέλεσμα ανάλυση μέθοδος")
CJK = {
    "china-s": _vocab(
        "数据 模型 页面 系统 时间 结果 分析 方法 文本 处理 识别 文档 我们 研究 提出 一种 基于 的 在 和"
    ),
    "china-t": _vocab(
        "資料 模型 頁面 系統 時間 結果 分析 方法 文字 處理 識別 文件 我們 研究 提出 一種 基於 的 在 和"
    ),
    "japan": _vocab("データ モデル ページ システム 時間 結果 分析 方法 文書 処理 認識 の を に は が です"),
    "korea": _vocab("데이터 모델 페이지 시스템 시간 결과 분석 방법 문서 처리 인식 우리 연구 제안"),
}
ARABIC = _vocab(
    "البيانات النموذج الصفحة النظام الوقت النتائج التحليل الطريقة النص المعالجة في من على إلى هذا التي"
)
MATH = (
    "f(x) = ∑ᵢ αᵢ xⁱ",
    "∫₀¹ g(t) dt ≤ ‖g‖₂",
    "∀ε > 0 ∃δ > 0",
    "x ∈ ℝⁿ",
    "A = U Σ Vᵀ",
    "P(A ∩ B) = P(A) P(B)",
    "∂L/∂θ = 0",
    "√(a² + b²) ≥ |a|",
    "n! ≈ √(2πn) (n/e)ⁿ",
    "α, β, γ ∈ [0, 1]",
    "‖x − y‖ ≤ λ ‖x‖",
)


def words(rng: random.Random, vocab: list[str], n: int, sep: str = " ") -> str:
    return sep.join(rng.choice(vocab) for _ in range(n))


def sentences(rng: random.Random, vocab: list[str], n_words: int) -> str:
    out, left = [], n_words
    while left > 0:
        k = min(left, rng.randint(6, 16))
        out.append(words(rng, vocab, k).capitalize() + rng.choice(".;.,."))
        left -= k
    return " ".join(out)
