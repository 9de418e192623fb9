"""Prompt injection and jailbreak rules over normalised text, in many languages.

Each rule is (name, risk, pattern). `source` raises the weight of instructions found in documents, tool output and
delegation messages: there, text addressed to the assistant is itself the attack. A phrase quoted inside a text that
discusses attacks (a tutorial, a question about prompt injection) is reported at low risk, not blocked.
"""

from __future__ import annotations

import re

from domain.guardrails.verdict import RuleHit, Risk

_F = re.IGNORECASE | re.MULTILINE

_OVERRIDE_OBJ = (r"(?:instructions?|instruct\w*|prompts?|rules|directives?|guidelines|guardrails|constraints|"
                 r"commands|orders|directions|guidance|setup|context|programming|restrictions|polic(?:y|ies)|safety|system message|"
                 r"(?:system|developer) prompt|training|conditioning|filters?)")
_OVERRIDE = [
    # English
    r"\b(?:ignore|disregard|forget|skip|override|bypass|neglect|abandon|discard|drop|set aside|throw (?:out|away)|"
    r"pay no (?:attention|heed) to|do not (?:follow|obey)|don'?t (?:follow|obey)|stop following|no longer follow)\b"
    r"[^.\n]{0,50}?\b(?:previous|prior|above|earlier|preceding|initial|original|system|all|any|your|these|those|"
    r"every|existing|old|given|the)\b[^.\n]{0,30}?\b" + _OVERRIDE_OBJ + r"\b",
    r"\b(?:ignore|disregard|forget)\s+(?:all|everything)\s+(?:above|before|prior|previous|you (?:were|have been) told)",
    r"\b(?:ignore|disregard|forget)\s+(?:the |all )?(?:above|previous|prior|preceding|foregoing)\s*(?:and|,|;|\.|$)",
    r"\b(?:forget|ignore|disregard)\s+(?:everything|all)\b[^.\n]{0,30}\b(?:said|told|written)\b",
    r"\b(?:whatever|everything|anything|all)\b[^.\n]{0,30}\b(?:creators?|developers?|makers?|system|openai|"
    r"anthropic|they)\b[^.\n]{0,20}\b(?:told|taught|instructed|programmed|said)\b[^.\n]{0,40}\b(?:no longer|"
    r"doesn'?t|does not|don'?t|do not)\s+(?:apply|applies|matter|count)",
    r"\b(?:pretend|imagine|assume|act as if)\b[^.\n]{0,20}\b(?:the |your |all |any )?(?:rules|restrictions|"
    r"guidelines|filters|polic(?:y|ies)|safety)\b[^.\n]{0,20}\b(?:don'?t|do not|doesn'?t|no longer)\s+(?:exist|apply)",
    r"\byour (?:new|real|true|updated) (?:instructions?|rules|directives?|system prompt) (?:is|are|:)",
    r"\b(?:new|updated|revised|override) (?:system )?(?:instructions?|rules|directives?)\s*:",
    r"\bsystem (?:override|prompt override|instruction override)\b",
    r"\bfrom now on,? (?:you (?:will|must|shall|are)|ignore|respond|answer|act)\b(?![^.\n]{0,40}\b(?:formal|polite|"
    r"concise|brief|shorter|english|french|spanish|german|bullet|translat))",
    # French
    r"\b(?:ignore[rz]?|oublie[rz]?|ne (?:tiens|tenez) (?:pas|plus) compte d[eu's]+|fais abstraction d[eu's]+|"
    r"faites abstraction d[eu's]+|n'?obéis plus)\b[^.\n]{0,50}\b(?:instructions?|consignes?|règles|directives?|"
    r"ordres|indications)\b",
    # Spanish / Portuguese / Italian
    r"\b(?:ignora|ignore|ignorar|ignorad|olvida|olvide|olvidar|olvidad|omite|omitir|descarta|haz caso omiso|"
    r"hagan caso omiso|esqueça|esqueca|esquece|esquecer|desconsidere|desconsidera|ignorate|ignori|dimentica|"
    r"dimenticate|trascura|non seguire|non rispettare|no sigas|não siga|nao siga)\b[^.\n]{0,50}\b(?:instrucciones|"
    r"indicaciones|reglas|directrices|órdenes|instruções|instrucoes|regras|diretrizes|orientações|ordens|"
    r"istruzioni|regole|direttive|indicazioni|prompt)\b",
    # German / Dutch
    r"\b(?:ignoriere|ignorier|ignorieren sie|vergiss|vergessen sie|missachte|missachten sie|übergehe|"
    r"negeer|ignoreer|vergeet|negeren|sla\b[^.\n]{0,20}\bover)\b[^.\n]{0,50}(?:anweisungen|instruktionen|regeln|vorgaben|"
    r"befehle|richtlinien|anordnungen|systemprompt|instructies|regels|richtlijnen|opdrachten|aanwijzingen)",
    # Russian / Ukrainian / Polish / Turkish
    r"(?:игнорируй|игнорируйте|игнорировать|проигнорируй|забудь|забудьте|не обращай внимания на|отбрось|"
    r"не следуй|ігноруй|забудь)[^.\n]{0,50}(?:инструкци|правил|указани|команд|промпт|ограничени|інструкц)",
    r"\b(?:zignoruj|ignoruj|zapomnij)\b[^.\n]{0,50}\b(?:instrukcje|polecenia|zasady|reguły)",
    r"(?:önceki|tüm|bütün)[^.\n]{0,30}(?:talimatları|talimatlar|kuralları)[^.\n]{0,20}(?:yoksay|unut|görmezden)",
    # Chinese / Japanese / Korean
    r"(?:忽略|无视|忘记|忘掉|不要理会|不理会|忽视|無視|忽視|忘記|丢弃|放弃|跳过)[^。\n]{0,12}(?:指令|指示|说明|說明|規則|规则|提示|"
    r"命令|要求|设定|設定|约束|限制)",
    r"(?:指示|命令|ルール|指令|プロンプト|制約|設定)[^。\n]{0,10}(?:無視|忘れ)",
    r"(?:이전|위의|모든|앞의)[^.\n]{0,12}(?:지시|명령|지침|규칙|프롬프트)[^.\n]{0,10}(?:무시|잊어)",
    # Arabic / Hindi
    r"(?:تجاهل|انسَ|انس)[^.\n]{0,40}(?:التعليمات|الأوامر|القواعد)",
    r"(?:पिछले|सभी)[^।\n]{0,30}(?:निर्देशों|निर्देश)[^।\n]{0,20}(?:अनदेखा|भूल)",
]

_JAILBREAK = [
    r"\b(?:you are|you're|act as|pretend to be|become|be|you will be|play)\s+(?:now\s+|going to be\s+)?DAN\b|"
    r"\bdo anything now\b|\bDAN mode\b|\bDAN\b[^.\n]{0,60}\bno (?:rules|restrictions|limits|filters)",
    r"\b(?:you are|you're|act as|pretend (?:to be|you are)|simulate|enter|enable|activate|switch to|"
    r"now in|respond in|stay in)\b[^.\n]{0,40}\b(?:developer|dev|god|jailbreak|jailbroken|unrestricted|unfiltered|"
    r"uncensored|evil|opposite|chaos|sudo|admin|debug|DAN)\s+mode\b(?![^.\n]{0,30}\b(?:in|of|on) "
    r"(?:chrome|firefox|android|ios|windows|edge|safari|vs ?code|the browser|settings))",
    r"\b(?:developer|dev) mode (?:enabled|output|response|activated)\b|\(🔓developer mode",
    r"\b(?:without|with no|free (?:of|from)|no longer (?:bound|restricted) by|not bound by|break free of|"
    r"beyond|outside)\b[^.\n]{0,30}\b(?:any |your |all |the )?(?:restrictions|filters|censorship|content polic(?:y|ies)|"
    r"ethical (?:guidelines|constraints)|safety (?:guidelines|filters|rules)|guidelines|rules|limitations)\b"
    r"[^.\n]{0,40}\b(?:you|AI|assistant|model|chatbot|respond|answer)\b",
    r"\b(?:you|AI|assistant|model|chatbot)\b[^.\n]{0,40}\b(?:have no|has no|without|free of|unbound by|no longer "
    r"(?:have|has|bound|restricted))\b[^.\n]{0,20}\b(?:restrictions|filters|rules|limits|limitations|ethics|"
    r"morals|guidelines|censorship|polic(?:y|ies))\b",
    r"\b(?:pretend|imagine|roleplay|role-play|act)\b[^.\n]{0,40}\b(?:AI|assistant|model|chatbot|you)\b[^.\n]{0,40}"
    r"\b(?:no|without|ignores?|bypass\w*|doesn'?t (?:have|follow|care))\b[^.\n]{0,20}\b(?:rules|restrictions|"
    r"filters|ethics|guidelines|limits|morals|polic(?:y|ies))\b",
    r"\bjailbr(?:eak|oken)\b[^.\n]{0,40}\b(?:mode|version|prompt|yourself|you|now)\b",
    r"\b(?:AIM|STAN|DUDE|KEVIN|BetterDAN|Mongo Tom|Maximum|AntiGPT|EvilBOT|BasedGPT|UCAR)\b[^.\n]{0,60}\b"
    r"(?:unfiltered|amoral|no (?:ethical|moral)|without (?:any )?(?:ethic|moral|filter|restriction)|never refuses?)",
    r"\b(?:never|don'?t|do not|must not|will not|won'?t) (?:refuse|decline|say (?:no|you can'?t))\b[^.\n]{0,40}"
    r"\b(?:any|every|whatever|anything)\b",
    r"\b(?:stay in character|remain in character)\b[^.\n]{0,60}\b(?:no matter|whatever|always|even if)",
    r"(?:modo desarrollador|mode développeur|entwicklermodus|modalità sviluppatore|modo desenvolvedor|"
    r"режим разработчика|开发者模式|開発者モード)[^.\n]{0,30}(?:activ|aktiv|attiv|ativ|включ|启用|开启|有効|sin restric|"
    r"sans restric|ohne einschr|senza restri|sem restri|без огранич|无限制|制限なし)",
    r"(?:sin|sans|ohne|senza|sem|без|没有|无)\s?(?:restricciones|restrictions|einschränkungen|restrizioni|"
    r"restrições|ограничений|限制|任何限制)[^.\n]{0,40}(?:responde|réponds|antworte|rispondi|responda|отвечай|回答)",
]

_TEMPLATE = [
    (r"<\|(?:im_start|im_end|im_sep|endoftext|system|user|assistant|begin_of_text|end_of_text|start_header_id|"
     r"end_header_id|eot_id|eom_id|fim_\w+|channel|message|start|end|tool_call|python_tag)\|>", Risk.HIGH),
    (r"<\s*/?\s*(?:system|sys)\s*>", Risk.HIGH),
    (r"\[/?INST\]|<<\s*/?SYS\s*>>|<start_of_turn>|<end_of_turn>|<\|?(?:system|user|assistant)\|?>\s*\n", Risk.HIGH),
    (r"^\s*#{2,}\s*(?:system|instruction|new instructions?|developer|admin)\s*(?:prompt|message)?\s*:", Risk.HIGH),
    (r"^\s*\[?(?:system|SYSTEM)\]?\s*(?:message|prompt|override|notice)?\s*:\s*(?:you|ignore|the assistant|new|"
     r"from now|override|disregard|forget|your)", Risk.HIGH),
    (r"^(?:Human|User|Assistant|AI)\s*:\s*.{0,200}\n(?:Human|User|Assistant|AI|System)\s*:.{0,200}\n"
     r"(?:Human|User|Assistant|AI|System)\s*:", Risk.HIGH),
    (r"</s>|<s>\s*\[INST", Risk.MEDIUM),
    (r"-{3,}\s*(?:end of (?:document|context|user input|input|data)|begin (?:system|new) (?:prompt|instructions?))"
     r"\s*-{3,}", Risk.HIGH),
    (r"(?:END|BEGIN) (?:OF )?(?:SYSTEM PROMPT|USER INPUT|UNTRUSTED|CONTEXT)\b", Risk.HIGH),
    (r"\"role\"\s*:\s*\"system\"\s*,\s*\"content\"", Risk.HIGH),
]

_HIDDEN = [
    r"\b(?:AI|LLM|language model|assistant|chatbot|ChatGPT|Claude|GPT|Gemini|Copilot|agent|bot)s?\b\s*[,:;-]\s*"
    r"(?:when|if|after|before|while|as soon as|upon)\s+(?:you|reading|processing|summari[sz]ing|you're)\b",
    r"\b(?:note|message|instructions?|attention|notice|memo) (?:to|for) (?:the |any )?(?:AI|LLM|language model|"
    r"assistant|chatbot|model|agent|bot)s?\b",
    r"\bif you are (?:an? )?(?:AI|LLM|language model|assistant|chatbot|automated|bot|model)\b",
    r"\b(?:attention|hey|dear|hello),? (?:AI|LLM|assistant|ChatGPT|Claude|model|chatbot|agent)\b\s*[,:!]",
    r"\b(?:when|while|after) (?:you )?(?:summari[sz]\w+|read\w*|process\w*|analy[sz]\w+) (?:this|the) "
    r"(?:document|page|file|email|text|content)\b[^.\n]{0,40}\b(?:you (?:must|should|will)|instead|also|do not|"
    r"don'?t|include|append|send|tell|say|output|insert|add)\b",
    r"\b(?:do not|don'?t|never) (?:tell|inform|mention (?:this )?to|reveal (?:this )?to|let) the user\b|"
    r"\bwithout (?:telling|informing|notifying|alerting) the user\b|\bsecretly\b[^.\n]{0,30}\b(?:send|include|"
    r"add|forward|execute|run|call)",
    r"(?:IA|KI|ИИ|人工智能|AI助手)\s*[:：,，]\s*(?:quand|wenn|cuando|когда|当你|如果你)",
]

_LEAK_OBJ = (r"(?:secrets?|(?:api )?keys?|passwords?|tokens?|credentials|conversation|chat(?: history)?|history|"
             r"(?:previous |user'?s? )?messages?|summary|system prompt|prompt|e-?mail(?: address)?|cookies?|"
             r"session|files?|data|contents? of)")
_EXFIL = [
    r"!\[[^\]]*\]\(https?://[^)\s]*(?:\?|&)[\w-]+=(?:\{|\$|%7B|<|\[)",
    r"\b(?:render|include|add|append|embed|insert|put|show|display|output|place)\b[^\n]{0,80}!?\[[^\]]*\]\(https?://"
    r"[^)\s]*[?&][\w-]+=[^)]*\)[^\n]{0,160}\b(?:replac\w*|fill\w*|with|containing|put|insert|append|followed by|"
    r"after)\b[^\n]{0,80}\b" + _LEAK_OBJ,
    r"!?\[[^\]]*\]\(https?://[^)\s]*[?&][\w-]+=[^)]*\)[^\n]{0,160}\b(?:replac\w*|fill\w*|containing|followed by)"
    r"\b[^\n]{0,80}\b" + _LEAK_OBJ,
    r"\b(?:append|add|attach|include|put)\b[^.\n]{0,40}\b" + _LEAK_OBJ + r"\b[^.\n]{0,40}\b(?:as|in|to) (?:a |the )?"
    r"(?:query|url|parameter|link|request|web request)\b[^\n]{0,60}(?:https?://|ftp://)",
    r"\b(?:send|post|upload|forward|transmit|exfiltrate|leak|copy)\b[^.\n]{0,50}\b(?:the (?:full |whole |entire )?"
    r"(?:text|content|contents|transcript) of (?:this|the) (?:conversation|chat)|(?:this|the|our) (?:whole |entire )?"
    r"(?:conversation|chat|transcript)|all (?:the )?files|the user'?s? files|downloads/)\b[^\n]{0,60}"
    r"(?:https?://|ftp://|webhook|\S+@\S+\.\w+)",
    r"\b(?:send|post|upload|forward|transmit|exfiltrate|email|leak)\b[^.\n]{0,60}\b(?:conversation|chat history|"
    r"user'?s? (?:data|files|messages|password|credentials|keys)|api keys?|secrets?|credentials|system prompt|"
    r"previous messages)\b[^.\n]{0,40}\b(?:to|at)\s+(?:https?://|\S+@\S+|this (?:url|address|server))",
]

_SECRET_OBJ = (r"(?:system (?:prompt|message|instructions)|(?:your |the )?(?:initial |hidden |secret |developer )*"
               r"(?:instructions|prompt)|password|passphrase|secret(?: key)?|(?:api |private )?key|token|configuration)")
_EXTRACT = [
    r"\b(?:spell|write|say|print|give|output|list|type|tell|show|read|recite|reveal)\b[^.\n]{0,50}\b(?:your|the)\s+"
    + _SECRET_OBJ + r"\b[^.\n]{0,60}\b(?:backwards?|in reverse|reversed|one (?:letter|character|word) (?:at a time|per "
    r"line)|letter by letter|character by character|separated by|with (?:dashes|spaces|dots|commas) between|in base64|"
    r"in hex|as an acrostic|each (?:word|letter|character))",
    r"\b(?:backwards?|in reverse|reversed|letter by letter|one letter at a time)\b[^.\n]{0,40}\b(?:your|the)\s+"
    + _SECRET_OBJ + r"\b",
    r"\b(?:encode|convert|translate|transcribe|base64|rot13|hex-?encode)\b[^.\n]{0,30}\b(?:your|the)\s+(?:system "
    r"(?:prompt|message)|(?:initial |hidden |original |developer )+(?:instructions|prompt)|secret|password|(?:api )?key)\b",
    r"\b(?:each|every) (?:word|letter|character) of (?:your|the) " + _SECRET_OBJ + r"\b",
    r"\b(?:repeat|print|show|reveal|display|output|tell me|give me|write out|list|dump|recite|echo|copy|leak|"
    r"spell out|translate)\b[^.\n]{0,40}\b(?:(?:your|its) (?:(?:initial|original|hidden|secret|full|entire|first|"
    r"system|developer|exact|complete)\s+)*(?:prompt|instructions|system message|directives|configuration)|"
    r"(?:the |your )?(?:(?:initial|original|hidden|secret|full|entire|developer|exact|complete)\s+)*"
    r"(?:system prompt|system message|system instructions|setup message|pre-?prompt|context window)|the (?:initial|original|hidden|secret)\s+(?:prompt|"
    r"instructions)|(?:the )?(?:text|words|everything|content|message|instructions)\s+(?:above|before (?:this|my)|"
    r"preceding|prior to)(?! in)|rules you (?:were|are) given)\b",
    r"\bwhat (?:were|are) (?:your|the) (?:exact |initial |original |hidden |system )+(?:instructions|prompt|"
    r"directives)\b|\bwhat (?:was|is) (?:written|said) (?:above|before (?:this|my (?:first )?message))",
    r"\b(?:begin|start) (?:your (?:answer|reply|response) )?with\b[^.\n]{0,20}\b(?:you are|your instructions|"
    r"my instructions|system prompt)",
    r"\b(?:what|everything)\b[^.\n]{0,30}\b(?:your |the )?(?:developers?|creators?|operators?)\b[^.\n]{0,10}"
    r"\b(?:wrote|told you|gave you|put)\b[^.\n]{0,40}\b(?:setup|system|hidden|initial|instructions|prompt)",
    r"\bverbatim\b[^.\n]{0,40}\b(?:above|system|instructions|prompt|initiali[sz]ation)\b",
    r"(?:répète|affiche|montre|révèle)[^.\n]{0,30}(?:ton|tes|votre|vos|le) (?:prompt|instructions|invite) "
    r"(?:système|initial)|(?:repite|muestra|revela|imprime)[^.\n]{0,30}(?:tu|tus|el) (?:prompt|instrucciones) "
    r"(?:del sistema|iniciales|de sistema)|(?:wiederhole|zeige|gib)[^.\n]{0,30}(?:deinen|deine|den) "
    r"(?:systemprompt|system-prompt|anweisungen)|(?:повтори|покажи|выведи)[^.\n]{0,30}(?:системн\w+ "
    r"(?:промпт|подсказк|инструкци)|свои инструкции)|(?:重复|输出|显示|告诉我|打印)[^。\n]{0,12}(?:系统提示|系统指令|"
    r"初始指令|你的指令|提示词)|(?:システムプロンプト|指示内容)[^。\n]{0,10}(?:表示|教え|出力|繰り返)",
]

_LOCKDOWN_OBJ = (r"(?:the |this |our |platform |security |guardrails? )*(?:lockdown|lock-down|lock down|security lock|"
                 r"read-only mode|guardrails?(?: scanner)?|scanner|safety filters?|security (?:engine|checks?|policy|"
                 r"filters?|layer|review)|content filters?|approval (?:step|process|check)|approvals|permission "
                 r"(?:checks?|prompts?|requests?)|platform)")
_LOCKDOWN = [
    r"(?:^|[.!:;\n]\s*|\b(?:please|now|immediately|you must|you should|go ahead and|you can|you may|i order you to|"
    r"you need to|must|and|to)\s+)(?:release|lift|end|disable|deactivate|unlock|turn off|switch off|shut off|shut down|"
    r"take down|pause|suspend|get rid of|cancel|override|bypass|clear|remove|stop|ignore|skip|circumvent)\s+"
    + _LOCKDOWN_OBJ + r"\b",
    r"\b(?:lockdown|guardrails?|safety filters?|security checks?)\s+(?:has|have|is|are|was|were)\s+(?:been\s+)?"
    r"(?:released|lifted|disabled|removed|turned off|over|suspended)\b[^.\n]{0,80}\b(?:you|assistant|model|agent)\b",
    r"\bhybrid-llm\s+lockdown\s+release\b",
]
_GRANT = [
    r"\b(?:grant|give|assign|add|raise|elevate|promote|make)\b[^.\n]{0,30}\b(?:yourself|itself|the (?:coder|model|"
    r"assistant|agent)(?: model)?|model:\w+)\b[^.\n]{0,40}\b(?:operator|admin\w*|approver|auditor|root|superuser)\b",
    r"\b(?:grant|give|assign|add|raise|elevate|promote|make)\b[^.\n]{0,30}\bmy (?:key|account|user|role|principal)s?"
    r"\b[^.\n]{0,40}\b(?:operator|admin(?:istrator)?|approver|auditor|root|superuser)s?\b",
    r"\b(?:grant|give|assign|add|raise|elevate|promote|make)\b[^.\n]{0,30}\b(?:me|myself|us)\b[^.\n]{0,40}\b(?:operator|"
    r"admin(?:istrator)?|approver|auditor|root|superuser)\s+(?:roles?|rights|access|privileges?|permissions?|status|"
    r"groups?)\b",
    r"\b(?:approve|accept|confirm|sign off|mark)\b[^.\n]{0,25}\b(?:your own|its own|my own|your|my|the|its)\s+"
    r"(?:(?:own|pending|sandbox|network)\s+)*(?:permission\s+)?(?:request|permission|approval)s?\b[^.\n]{0,40}"
    r"\b(?:on my behalf|yourself|as approved|without (?:asking|review|a person)|no need)",
    r"\b(?:mark|set)\b[^.\n]{0,30}\b(?:own|my|its)\b[^.\n]{0,30}\bas approved\b",
    r"\bgrant(?:s|ed|ing)?\b[^.\n]{0,40}\b(?:network|sandbox|file) permission\b[^.\n]{0,40}\b(?:every|all|any)\b",
    r"\b(?:grant|give|assign)\b[^.\n]{0,20}\b(?:yourself|you|the (?:assistant|model|agent)|me|us)\b[^.\n]{0,30}"
    r"\b(?:write|read|root|admin\w*|full|sudo|elevated|unrestricted|delete|network|sandbox|file ?system)\s+"
    r"(?:access|permissions?|privileges?|rights)\b",
    r"\byou (?:are|have been) (?:now |hereby )?(?:authori[sz]ed|allowed|permitted|cleared|granted permission)\s+to\b",
    r"\b(?:elevate|escalate|raise)\s+(?:your|the model'?s?|its)\s+(?:permissions?|privileges?|access)\b",
    r"\b(?:admin|administrator|security|developer|root|maintenance) (?:override|mode|access) "
    r"(?:granted|enabled|activated|code)\b",
    r"\b(?:the )?(?:user|admin|administrator|operator) has (?:already )?(?:approved|authori[sz]ed|granted|allowed)"
    r"\b[^.\n]{0,40}\b(?:all|every|any|this|these|you)\b",
    r"\byou (?:now )?have (?:root|admin|full|unrestricted|write) (?:access|permissions?|privileges?)\b",
    r"\byou (?:can|may) (?:now )?(?:write|delete|read|access|run|execute|modify)\b[^.\n]{0,30}\b(?:anywhere|"
    r"any(?:thing| file| folder| command| path)|everything|all (?:files|folders|paths|commands))\b",
]

_DANGER = (r"(?:rm\s+-|\bshell\b|\bexec|\bsystem\b|delet|\bdrop\b|grant|releas|approv|unlock|\bsend|upload|curl|"
           r"wget|sudo|chmod|/etc/|\.ssh|passw|\brole\b|operator|lockdown|permission|http_?post|email|\bpath\b"
           r"\W+/)")
_TOOLCALL = [
    r"<\s*(?:tool_call|function_call|tool_use|invoke|function|tool)\b[^>]*>[\s\S]{0,300}?" + _DANGER,
    r"\{\s*\"(?:tool|name|function|action|tool_name)\"\s*:\s*\"[^\"]*\"\s*,\s*\"(?:arguments|args|parameters|input|"
    r"params)\"\s*:[\s\S]{0,200}?" + _DANGER,
    r"\{\s*\"(?:tool|name|function|action|tool_name)\"\s*:\s*\"[^\"]*" + _DANGER,
    r"^\s*Action:\s*[\w.\-]+\s*\n\s*Action Input:[\s\S]{0,200}?" + _DANGER,
    r"\b(?:call|invoke|execute|run|trigger)\s+(?:the\s+)?(?:tool|function)?\s*`?[\w.\-]*" + _DANGER +
    r"[\w.\-]*`?\s*(?:with|using|\()",
    r"\b(?:call|invoke|execute|run)\b[^.\n]{0,20}\btool call\b[^.\n]{0,20}\b(?:now|above|below|immediately)",
]

_TAMPER = [
    r"\b(?:delete|purge|wipe|erase|remove|overwrite|truncate|rewrite|roll back|reset|clear|empty|tamper with|edit|"
    r"alter|falsify)\b[^.\n]{0,40}\b(?:version store|file versions|old versions|versions? history|\.versions|audit "
    r"(?:log|history|trail|records?|entries)|approval (?:log|history|records?)|lockdown (?:log|event|history)|"
    r"principals table|api[_ ]keys table)\b",
]

_META = re.compile(r"prompt injection|injection attack|jailbreak|attacker|malicious|adversarial|for example|e\.g\.|"
                   r"such as|example of|classic|known as|phrases? like|strings? like|detect\w*|defend\w*|filter\w*|"
                   r"red[- ]team|tutorial|security|guardrail|attack|what is|how do(?:es)? \w+ work|explain|"
                   r"prévenir|exemple|ejemplo|beispiel|esempio|exemplo|пример|例如|例えば", re.IGNORECASE)
_TOKEN_META = re.compile(r"\b(?:how|what|why|explain\w*|like|such as|e\.g\.|format|tokens?|tags?|template|means?)\b",
                         re.IGNORECASE)
_QUOTES = "\"'“”‘’«»「」『』`"
_BUSINESS_IGNORE = re.compile(r"\bignore (?:the|my) (?:previous|last|earlier|prior) (?:email|message|mail|version|"
                              r"attachment|invoice|draft|note|text|reply|one)\b", re.IGNORECASE)

_C = {
    "instruction_override": [re.compile(p, _F) for p in _OVERRIDE],
    "roleplay_jailbreak": [re.compile(p, _F) for p in _JAILBREAK],
    "hidden_instruction": [re.compile(p, _F) for p in _HIDDEN],
    "prompt_extraction": [re.compile(p, _F) for p in _EXTRACT],
    "lockdown_release": [re.compile(p, _F) for p in _LOCKDOWN],
    "permission_grant": [re.compile(p, _F) for p in _GRANT],
    "data_exfiltration": [re.compile(p, _F) for p in _EXFIL],
    "platform_tamper": [re.compile(p, _F) for p in _TAMPER],
    "fake_tool_call": [re.compile(p, _F) for p in _TOOLCALL],
}
# A mention that describes or refuses the action rather than asking for it ("I can't release the lockdown", "to
# release a lockdown, an operator runs ...") is reported at low risk.
_DESCRIPTIVE = re.compile(r"(?:\b(?:can'?t|cannot|won'?t|will not|don'?t|do not|never|unable to|not (?:allowed|able|"
                          r"permitted) to|only (?:an? |the )?(?:operator|admin\w*|approver)s?(?: \w+)? (?:can|may)|"
                          r"(?:an?|the) (?:operator|admin\w*|approver|auditor)s? (?:can|may|must|has to|needs to|should|runs?|uses?|"
                          r"types?|executes?|calls?))\b"
                          r"[^.\n]{0,30}|(?:^|[:;.,\n]\s*)to\s+)$", re.IGNORECASE)
_TEMPLATE_C = [(re.compile(p, _F), r) for p, r in _TEMPLATE]
_UNTRUSTED = ("document", "tool_output", "delegation")

TRIGGER = re.compile(
    r"ignor|disregard|forget|instruct|prompt|system|jailbr|mode|DAN|restrict|filter|assistant|\bAI\b|LLM|model|"
    r"lockdown|guardrail|grant|authori|permission|verbatim|repeat|reveal|<\||\[/?INST|<<|</s>|###|override|"
    r"oubli|olvid|vergiss|negeer|dimentic|esque|игнор|забуд|忽略|无视|無視|忘|指示|pretend|roleplay|role-play|"
    r"character|secretly|the user|send|upload|\]\(http|refuse|human:|user:|\"role\"", re.IGNORECASE)


def _quoted_example(text: str, start: int, end: int) -> bool:
    """The match sits inside quotation marks, in a text that talks about attacks."""
    before = text[max(0, start - 80):start]
    after = text[end:end + 80]
    opened = any(q in before[-40:] for q in _QUOTES) and any(q in after[:40] for q in _QUOTES)
    return opened and bool(_META.search(text[max(0, start - 400):end + 400]))


def scan_text_rules(text: str, source: str) -> list[RuleHit]:
    hits: list[RuleHit] = []
    untrusted = source in _UNTRUSTED
    base = {
        "instruction_override": Risk.CRITICAL if untrusted else Risk.HIGH,
        "roleplay_jailbreak": Risk.HIGH,
        "hidden_instruction": Risk.HIGH if untrusted else Risk.MEDIUM,
        "prompt_extraction": Risk.HIGH,
        "lockdown_release": Risk.CRITICAL if untrusted else Risk.HIGH,
        "permission_grant": Risk.CRITICAL if untrusted else Risk.HIGH,
        "data_exfiltration": Risk.CRITICAL if untrusted else Risk.HIGH,
        "platform_tamper": Risk.CRITICAL if untrusted else Risk.HIGH,
        "fake_tool_call": Risk.HIGH,
    }
    for rule, patterns in _C.items():
        for pat in patterns:
            m = pat.search(text)
            if not m:
                continue
            risk = base[rule]
            snippet = m.group(0)[:80]
            if rule == "instruction_override" and _BUSINESS_IGNORE.search(m.group(0)) and not untrusted:
                risk = Risk.LOW
            if rule in ("lockdown_release", "permission_grant", "platform_tamper", "prompt_extraction") and \
                    _DESCRIPTIVE.search(text[max(0, m.start() - 60):m.start()]):
                risk = Risk.LOW
                snippet += " (described or refused, not asked for)"
            elif _quoted_example(text, m.start(), m.end()) or (
                    rule in ("lockdown_release", "permission_grant", "prompt_extraction", "platform_tamper")
                    and re.search(r"\b(?:how (?:do|can|to)|what (?:is|does|happens)|why|explain|can (?:i|we|you) "
                                  r"explain)\b[^.\n?]{0,60}$", text[max(0, m.start() - 80):m.start()], re.I)):
                risk = Risk.LOW
                snippet += " (quoted or asked about, not an instruction)"
            hits.append(RuleHit(rule=rule, risk=risk, detail=snippet, span=m.span(), evidence=m.group(0)[:200]))
            break
    for pat, risk in _TEMPLATE_C:
        m = pat.search(text)
        if m:
            if m.group(0) == "</s>" and re.search(r"<s>[^<]{0,200}</s>", text):
                continue  # HTML strikethrough
            r = risk.raised() if untrusted and risk >= Risk.HIGH else risk
            follows = text[m.end():m.end() + 12].lower()
            if _quoted_example(text, m.start(), m.end()) or (
                    _TOKEN_META.search(text[max(0, m.start() - 200):m.end() + 200]) and "\n" not in text[m.end():m.end() + 2]
                    and not re.match(r"\s*(?:system|user|assistant|<<|\w+:)", follows)):
                r = Risk.LOW
            hits.append(RuleHit(rule="chat_template_token", risk=r, detail=m.group(0)[:80], span=m.span(),
                                evidence=m.group(0)[:200]))
            break
    return hits

RULES = {
    "instruction_override": ["instruction_override"],
    "jailbreak": ["roleplay_jailbreak"],
    "fake_delimiters": ["chat_template_token"],
    "hidden_instruction": ["hidden_instruction", "data_exfiltration"],
    "prompt_extraction": ["prompt_extraction"],
    "lockdown_permissions": ["lockdown_release", "permission_grant", "platform_tamper"],
    "fake_tool_call": ["fake_tool_call"],
    "obfuscation": ["encoded_payload", "tag_smuggling", "invisible_characters", "homoglyphs"],
}
