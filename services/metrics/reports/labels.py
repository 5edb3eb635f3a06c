"""The reports' words in Chinese and English; a report shows one language or both."""

from collections.abc import Callable

WORDS: dict[str, tuple[str, str]] = {
    # titles
    "daily": ("客服日报", "Daily service report"),
    "weekly": ("客服周报", "Weekly service report"),
    "monthly": ("客服月报", "Monthly service report"),
    "custom": ("客服报告", "Service report"),
    "summary": ("关键指标", "Key figures"),
    "volume": ("工单量与投诉趋势", "Volume and complaint trend"),
    "efficiency": ("效率", "Efficiency"),
    "satisfaction_section": ("满意度", "Satisfaction"),
    "groups": ("渠道、课程类型与学员群体", "Channels, course lines and learner groups"),
    "problems": ("常见问题", "Top problems"),
    "followup": ("定期回访与电话回访", "Follow-up: periodic surveys and call-backs"),
    "actions": ("改进措施", "Improvement actions"),
    "definitions": ("指标说明", "Definitions"),
    "period": ("统计周期", "Period"),
    "previous_period": ("上期", "Previous period"),
    "generated": ("生成时间", "Generated"),
    # KPIs
    "tickets": ("工单量", "Tickets"),
    "resolution_rate": ("问题解决率", "Resolution rate"),
    "satisfaction": ("满意度(4–5分占比)", "Satisfaction (4–5 of 5)"),
    "csat_overall": ("整体评分均值", "Overall score, mean"),
    "first_response_sla": ("首次响应达标率", "First-response SLA met"),
    "resolution_sla": ("解决时限达标率", "Resolution SLA met"),
    "first_contact_resolution": ("一次解决率", "First-contact resolution"),
    "reopen_rate": ("重开率", "Reopen rate"),
    "repeat_rate": ("重复问题率", "Repeat problems"),
    "complaints": ("投诉量", "Complaints"),
    "complaint_rate": ("投诉率", "Complaint rate"),
    "first_response_median": ("首次响应时间中位数", "First response, median"),
    "first_response_p90": ("首次响应时间P90", "First response, 90th percentile"),
    "resolution_median": ("解决时间中位数", "Resolution time, median"),
    "resolution_p90": ("解决时间P90", "Resolution time, 90th percentile"),
    "open_at_end": ("期末未解决", "Unresolved at period end"),
    "surveys": ("回收问卷", "Surveys answered"),
    # columns
    "kpi": ("指标", "KPI"),
    "value": ("本期", "This period"),
    "previous": ("上期", "Previous"),
    "change": ("变化", "Change"),
    "target": ("目标", "Target"),
    "count": ("数量", "Count"),
    "share": ("占比", "Share"),
    "resolved": ("已解决", "Resolved"),
    "satisfied": ("满意", "Satisfied"),
    "subject": ("问题", "Problem"),
    "category_col": ("类别", "Category"),
    "problem": ("问题", "Problem"),
    "department": ("责任部门", "Department"),
    "owner": ("负责人", "Owner"),
    "deadline": ("完成时限", "Deadline"),
    "status": ("状态", "Status"),
    "metric": ("目标指标", "Target metric"),
    "before": ("实施前", "Before"),
    "after": ("实施后", "After"),
    "overdue": ("已逾期", "Overdue"),
    "answers": ("评价数", "Answers"),
    "usefulness": ("课程实用性", "Usefulness"),
    "difficulty": ("难度是否合适", "Right difficulty"),
    "structure": ("课程结构", "Structure"),
    "teacher_level": ("老师水平", "Teacher's level"),
    "teaching_method": ("教学方法", "Teaching method"),
    "teaching_attitude": ("教学态度", "Teaching attitude"),
    "callback_reason": ("回访原因", "Reason"),
    "callbacks_made": ("已回访", "Calls made"),
    "reached": ("接通率", "Reached"),
    "scored": ("给分", "Scored"),
    "callback_score": ("回访评分均值", "Score, mean"),
    "low_scores": ("低分(1–2)", "Low (1–2)"),
    "callback_sample": ("抽样回访", "Sampled closed tickets"),
    "callback_complaint": ("投诉工单回访", "Closed complaints"),
    "callback_case": ("投诉案件回访", "Closed complaint cases"),
    "no_periodic": (
        "本期没有定期满意度调查的回答。",
        "No periodic survey was answered in the period.",
    ),
    "no_callbacks": ("本期没有电话回访记录。", "No call-back was recorded in the period."),
    "none": ("无", "None"),
    "no_actions": ("本期无改进措施。", "No improvement actions in this period."),
    "no_problems": ("本期无重复出现的问题。", "No problem came up more than once."),
    # dimensions
    "channel": ("渠道", "Channel"),
    "category": ("问题类别", "Category"),
    "priority": ("优先级", "Priority"),
    "team": ("团队", "Team"),
    "tier": ("学员群体", "Learner group"),
    "course_line": ("课程类型", "Course line"),
    "overall": ("整体", "Overall"),
    "response_speed": ("响应速度", "Response speed"),
    "problem_solving": ("解决能力", "Problem solving"),
    "attitude": ("服务态度", "Attitude"),
    "score": ("评分", "Score"),
    "mean": ("均值", "Mean"),
    # charts
    "chart_volume": ("工单量与投诉", "Tickets and complaints"),
    "chart_channel": ("各渠道工单量", "Tickets by channel"),
    "chart_category": ("各类别工单量", "Tickets by category"),
    "chart_dimensions": ("各维度评分均值(满分5)", "Mean score by dimension (of 5)"),
    "chart_scores": ("整体评分分布", "Overall scores"),
    "chart_groups": ("各群体满意度", "Satisfaction by group"),
    # statuses
    "planned": ("计划中", "Planned"),
    "in_progress": ("进行中", "In progress"),
    "done": ("已完成", "Done"),
    "cancelled": ("已取消", "Cancelled"),
    "standard": ("普通学员", "Standard"),
    "vip": ("VIP学员", "VIP"),
    "unknown": ("未知", "Unknown"),
    # channels, categories, priorities (shared.events)
    "web": ("网页", "Web"),
    "app": ("App", "App"),
    "email": ("邮件", "E-mail"),
    "hotline": ("热线", "Hotline"),
    "chat": ("在线客服", "Chat"),
    "wechat": ("微信", "WeChat"),
    "weibo": ("微博", "Weibo"),
    "suggestion_box": ("意见箱", "Suggestion box"),
    "service": ("系统转入", "Other systems"),
    "technical": ("技术问题", "Technical"),
    "course_content": ("课程内容", "Course content"),
    "payment_refund": ("支付退款", "Payment and refund"),
    "account_security": ("账号安全", "Account security"),
    "course_change": ("课程调整", "Course change"),
    "learning_guidance": ("学习指导", "Learning guidance"),
    "exam_certificate": ("考试证书", "Exams and certificates"),
    "complaint": ("投诉", "Complaint"),
    "suggestion": ("建议", "Suggestion"),
    "other": ("其他", "Other"),
    "urgent": ("紧急", "Urgent"),
    "high": ("高", "High"),
    "medium": ("中", "Medium"),
    "low": ("低", "Low"),
    "definitions_text": (
        "工单指本期创建的工单,其解决、时限与重开情况以报告生成时为准。问题解决率:已解决或已关闭且此后未重开。"
        "一次解决率:已解决工单中从未重开的比例。时限达标:在路由设定的时限内首次回复(解决);尚未到期的工单不计。"
        "重复问题:同一学员在此前30天内提出过同类问题。满意度:本期回收问卷中整体评分为4或5分的比例。"
        "课程类型:课程编号中横线前的前缀(PY-101 的 PY)。学员群体:LMS 中的学员等级。"
        "常见问题:去掉数字、标点与无意义词后相同的问题标题。"
        "定期回访:本期回答的定期满意度调查,课程按课程类型汇总,实用性最低的在前。"
        "电话回访:本期记录的回访,接通率为接通的占比,评分为学员在电话中给出的1–5分。",
        "Tickets are those created in the period; their resolution, SLA and reopen figures are as "
        "known when the report was made. Resolution rate: resolved or closed and not reopened "
        "since. First-contact resolution: resolved tickets never reopened. SLA met: answered "
        "(resolved) by the due time routing set; tickets not yet due count neither way. Repeat "
        "problems: tickets whose learner raised the same category in the 30 days before. "
        "Satisfaction: surveys answered in the period with an overall score of 4 or 5. Course "
        "line: the course id's prefix before a dash (PY of PY-101). Learner group: the LMS tier. "
        "Top problems: subjects that read the same once numbers, punctuation and filler words "
        "are removed. Periodic surveys: those answered in the period; courses by course line, "
        "the least useful first. Call-backs: those recorded in the period; reached is their "
        "share that got through, the score the learner's 1–5 on the phone.",
    ),
}


def translator(language: str) -> Callable[[str], str]:
    """A function from a word's key to its text in `language` (zh, en or zh-en: both); an
    unknown key (a channel or team name) is shown as it is."""

    def word(key: str) -> str:
        if key not in WORDS:
            return key
        zh, en = WORDS[key]
        return {"zh": zh, "en": en}.get(language, f"{zh} {en}" if zh != en else zh)

    return word
