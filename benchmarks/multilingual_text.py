"""Short real sentences in 21 languages and 11 scripts, and page-sized OCR-like texts built from them: the
language-identification set of the quality tests and the pages of the quality benchmark.

Every language says the same four things (a budget approved, instructions to read, a flood, a result), so
no language gets an easier topic. Pages mix the sentences with what DeepSeek-OCR writes around text:
Markdown headings, an HTML table of numbers, grounding tags and a page number.
"""

from __future__ import annotations

import random

SENTENCES: dict[str, tuple[str, ...]] = {
    "en": (
        "The committee approved the annual budget after a long discussion about rising costs.",
        "Please read the instructions carefully before filling in the application form.",
        "The river flooded the lower part of the town during the spring storms.",
        "Our results show that the new method reduces the error rate by almost half.",
    ),
    "fr": (
        "Le comité a approuvé le budget annuel après une longue discussion sur la hausse des coûts.",
        "Veuillez lire attentivement les instructions avant de remplir le formulaire de demande.",
        "La rivière a inondé la partie basse de la ville pendant les tempêtes du printemps.",
        "Nos résultats montrent que la nouvelle méthode réduit presque de moitié le taux d'erreur.",
    ),
    "de": (
        "Der Ausschuss hat den Jahreshaushalt nach einer langen Diskussion über steigende Kosten genehmigt.",
        "Bitte lesen Sie die Anweisungen sorgfältig durch, bevor Sie das Antragsformular ausfüllen.",
        "Der Fluss überschwemmte während der Frühjahrsstürme den unteren Teil der Stadt.",
        "Unsere Ergebnisse zeigen, dass das neue Verfahren die Fehlerquote fast halbiert.",
    ),
    "es": (
        "El comité aprobó el presupuesto anual después de una larga discusión sobre el aumento de los costes.",
        "Por favor, lea atentamente las instrucciones antes de rellenar el formulario de solicitud.",
        "El río inundó la parte baja del pueblo durante las tormentas de primavera.",
        "Nuestros resultados muestran que el nuevo método reduce la tasa de error casi a la mitad.",
    ),
    "it": (
        "Il comitato ha approvato il bilancio annuale dopo una lunga discussione sull'aumento dei costi.",
        "Si prega di leggere attentamente le istruzioni prima di compilare il modulo di domanda.",
        "Il fiume ha inondato la parte bassa della città durante i temporali primaverili.",
        "I nostri risultati mostrano che il nuovo metodo riduce il tasso di errore quasi della metà.",
    ),
    "pt": (
        "O comitê aprovou o orçamento anual depois de uma longa discussão sobre o aumento dos custos.",
        "Por favor, leia atentamente as instruções antes de preencher o formulário de inscrição.",
        "O rio inundou a parte baixa da cidade durante as tempestades da primavera.",
        "Os nossos resultados mostram que o novo método reduz a taxa de erro quase para metade.",
    ),
    "nl": (
        "De commissie keurde de jaarlijkse begroting goed na een lange discussie over de stijgende kosten.",
        "Lees de instructies zorgvuldig door voordat u het aanvraagformulier invult.",
        "De rivier overstroomde tijdens de voorjaarsstormen het lage deel van de stad.",
        "Onze resultaten laten zien dat de nieuwe methode het aantal fouten bijna halveert.",
    ),
    "sv": (
        "Kommittén godkände årsbudgeten efter en lång diskussion om de stigande kostnaderna.",
        "Läs instruktionerna noggrant innan du fyller i ansökningsblanketten.",
        "Under vårstormarna översvämmade floden den lägre delen av staden.",
        "Våra resultat visar att den nya metoden nästan halverar antalet fel.",
    ),
    "pl": (
        "Komisja zatwierdziła roczny budżet po długiej dyskusji na temat rosnących kosztów.",
        "Prosimy o uważne przeczytanie instrukcji przed wypełnieniem formularza wniosku.",
        "Podczas wiosennych burz rzeka zalała niższą część miasta.",
        "Nasze wyniki pokazują, że nowa metoda zmniejsza liczbę błędów prawie o połowę.",
    ),
    "tr": (
        "Komite, artan maliyetler hakkında uzun bir tartışmanın ardından yıllık bütçeyi onayladı.",
        "Lütfen başvuru formunu doldurmadan önce talimatları dikkatlice okuyun.",
        "Nehir, bahar fırtınaları sırasında kasabanın alçak kesimini su altında bıraktı.",
        "Sonuçlarımız, yeni yöntemin hata oranını neredeyse yarıya indirdiğini gösteriyor.",
    ),
    "vi": (
        "Ủy ban đã thông qua ngân sách hằng năm sau một cuộc thảo luận dài về chi phí tăng cao.",
        "Vui lòng đọc kỹ hướng dẫn trước khi điền vào mẫu đơn.",
        "Trong những cơn bão mùa xuân, dòng sông đã làm ngập phần thấp của thị trấn.",
        "Kết quả của chúng tôi cho thấy phương pháp mới giảm tỷ lệ lỗi gần một nửa.",
    ),
    "ru": (
        "Комитет утвердил годовой бюджет после долгого обсуждения роста расходов.",
        "Пожалуйста, внимательно прочитайте инструкцию, прежде чем заполнять заявление.",
        "Весной во время бурь река затопила нижнюю часть города.",
        "Наши результаты показывают, что новый метод почти вдвое снижает количество ошибок.",
    ),
    "uk": (
        "Комітет затвердив річний бюджет після довгого обговорення зростання витрат.",
        "Будь ласка, уважно прочитайте інструкцію, перш ніж заповнювати заяву.",
        "Навесні під час буревіїв річка затопила нижню частину міста.",
        "Наші результати показують, що новий метод майже вдвічі зменшує кількість помилок.",
    ),
    "el": (
        "Η επιτροπή ενέκρινε τον ετήσιο προϋπολογισμό μετά από μια μακρά συζήτηση για την αύξηση του κόστους.",
        "Παρακαλούμε διαβάστε προσεκτικά τις οδηγίες πριν συμπληρώσετε την αίτηση.",
        "Ο ποταμός πλημμύρισε το χαμηλό τμήμα της πόλης κατά τη διάρκεια των ανοιξιάτικων καταιγίδων.",
        "Τα αποτελέσματά μας δείχνουν ότι η νέα μέθοδος μειώνει το ποσοστό σφαλμάτων σχεδόν στο μισό.",
    ),
    "ar": (
        "وافقت اللجنة على الميزانية السنوية بعد نقاش طويل حول ارتفاع التكاليف.",
        "يرجى قراءة التعليمات بعناية قبل ملء نموذج الطلب.",
        "غمر النهر الجزء المنخفض من المدينة خلال عواصف الربيع.",
        "تظهر نتائجنا أن الطريقة الجديدة تخفض معدل الخطأ إلى النصف تقريبا.",
    ),
    "he": (
        "הוועדה אישרה את התקציב השנתי לאחר דיון ארוך על עליית העלויות.",
        "נא לקרוא בעיון את ההוראות לפני מילוי טופס הבקשה.",
        "הנהר הציף את החלק הנמוך של העיר במהלך סופות האביב.",
        "התוצאות שלנו מראות שהשיטה החדשה מפחיתה את שיעור השגיאות כמעט בחצי.",
    ),
    "hi": (
        "समिति ने बढ़ती लागत पर लंबी चर्चा के बाद वार्षिक बजट को मंजूरी दी।",
        "कृपया आवेदन पत्र भरने से पहले निर्देशों को ध्यान से पढ़ें।",
        "वसंत के तूफानों के दौरान नदी ने शहर के निचले हिस्से में बाढ़ ला दी।",
        "हमारे परिणाम दिखाते हैं कि नई विधि त्रुटि दर को लगभग आधा कर देती है।",
    ),
    "th": (
        "คณะกรรมการอนุมัติงบประมาณประจำปีหลังจากการอภิปรายเรื่องต้นทุนที่สูงขึ้นเป็นเวลานาน",
        "โปรดอ่านคำแนะนำอย่างละเอียดก่อนกรอกแบบฟอร์มใบสมัคร",
        "แม่น้ำท่วมพื้นที่ต่ำของเมืองในช่วงพายุฤดูใบไม้ผลิ",
        "ผลการศึกษาของเราแสดงให้เห็นว่าวิธีใหม่ช่วยลดอัตราความผิดพลาดลงเกือบครึ่งหนึ่ง",
    ),
    "zh": (
        "委员会在就成本上涨进行了长时间讨论后批准了年度预算。",
        "请在填写申请表之前仔细阅读说明。",
        "春季暴风雨期间，河水淹没了城镇的低洼地区。",
        "我们的结果表明，新方法将错误率降低了近一半。",
    ),
    "ja": (
        "委員会は費用の上昇について長い議論をした後、年間予算を承認しました。",
        "申込書に記入する前に、説明をよくお読みください。",
        "春の嵐の間に、川が町の低い地域を水浸しにしました。",
        "私たちの結果は、新しい方法で誤り率がほぼ半分になることを示しています。",
    ),
    "ko": (
        "위원회는 비용 상승에 대해 오랜 논의를 거친 후 연간 예산을 승인했습니다.",
        "신청서를 작성하기 전에 안내문을 주의 깊게 읽어 주십시오.",
        "봄철 폭풍우 동안 강물이 마을의 낮은 지역을 덮쳤습니다.",
        "우리의 결과는 새로운 방법이 오류율을 거의 절반으로 줄인다는 것을 보여 줍니다.",
    ),
}

# The script most letters of each language's sentences are written in (the names quality.py reports).
SCRIPTS: dict[str, str] = {
    **dict.fromkeys(("en", "fr", "de", "es", "it", "pt", "nl", "sv", "pl", "tr", "vi"), "Latin"),
    **dict.fromkeys(("ru", "uk"), "Cyrillic"),
    "el": "Greek",
    "ar": "Arabic",
    "he": "Hebrew",
    "hi": "Devanagari",
    "th": "Thai",
    "zh": "Han",
    "ja": "Japanese",
    "ko": "Hangul",
}


def page_text(language: str, seed: int, paragraphs: int = 6) -> str:
    """An OCR-like page in `language`: a heading, `paragraphs` paragraphs of its sentences in a shuffled
    order, one HTML table of numbers, a grounding tag and a page number (about 2,000 to 3,000 characters
    for the default 6 paragraphs of a Latin-script language)."""
    rng = random.Random(seed)
    sentences = SENTENCES[language]
    blocks = [f"# {sentences[rng.randrange(len(sentences))]}"]
    for k in range(paragraphs):
        blocks.append(" ".join(rng.sample(sentences, len(sentences))))
        if k == paragraphs // 2:
            cells = "".join(
                f"<tr><td>{2020 + r}</td><td>{rng.randint(100, 99_999):,}</td><td>{rng.random():.2f}</td></tr>"
                for r in range(4)
            )
            blocks.append(f"<|ref|>table<|/ref|><|det|>[[80, 412, 910, 530]]<|/det|>\n<table>{cells}</table>")
    blocks.append(str(rng.randint(1, 400)))
    return "\n\n".join(blocks)
