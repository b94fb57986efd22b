// The texts of the pages: `field: "English", "한국어";`, grouped by page. Included by
// `i18n.rs` (its `catalogue!` macro makes the `Strings` struct and the EN and KO instances).
catalogue! {
    // base.html: the bar on every page; `lang` is `<html lang>`.
    lang: "en", "ko";
    nav_search: "Search", "검색";
    nav_worklist: "Worklist", "워크리스트";
    nav_register: "Register", "환자 접수";
    nav_status: "Status", "상태";
    nav_users: "Users", "사용자";
    nav_conflicts: "Conflicts", "충돌";
    nav_operations: "Operations", "작업 내역";
    nav_import: "Import media", "매체 가져오기";
    nav_peers: "Peers", "DICOM 장비";
    nav_forwarding: "Forwarding", "자동 전송";
    nav_certificate: "Certificate", "인증서";
    nav_audit: "Audit", "감사 기록";
    nav_logout: "Log out", "로그아웃";

    // login.html
    login_title: "Log in", "로그인";
    login_user: "User name", "사용자 이름";
    login_password: "Password", "비밀번호";
    login_button: "Log in", "로그인";
    login_expired: "The form expired; please log in again.", "양식이 만료되었습니다. 다시 로그인하십시오.";
    login_wrong: "wrong user name or password", "사용자 이름 또는 비밀번호가 올바르지 않습니다.";
    login_locked: "too many failed logins; wait {} s", "로그인 실패가 너무 많습니다. {}초 후에 다시 시도하십시오.";

    // search.html
    search_title: "Search", "검색";
    search_name: "Patient name", "환자 이름";
    search_name_hint: "KIM* or 김", "KIM* 또는 김";
    search_id: "Patient ID", "환자 ID";
    search_date: "Study date", "검사일";
    search_button: "Search", "검색";
    search_more: "More filters", "추가 조건";
    search_from: "From", "시작";
    search_to: "To", "끝";
    search_modality: "Modality", "장비 종류";
    search_any: "any", "전체";
    search_accession: "Accession", "접수 번호";
    search_referring: "Referring physician", "의뢰의";
    search_not_here: "Not here? Search", "여기에 없습니까? 검색:";
    col_patient: "Patient", "환자";
    col_id: "ID", "ID";
    col_birth: "Birth date", "생년월일";
    col_sex: "Sex", "성별";
    col_study_date: "Study date", "검사일";
    col_modality: "Modality", "장비";
    col_description: "Description", "검사 설명";
    col_series_images: "Series / images", "시리즈 / 영상";
    col_report: "Report", "판독";
    search_none: "No studies match.", "조건에 맞는 검사가 없습니다.";
    search_newer: "← Newer", "← 최근";
    search_older: "Older →", "이전 →";
    when_any: "any date", "전체 기간";
    when_today: "today", "오늘";
    when_yesterday: "yesterday", "어제";
    when_7d: "last 7 days", "최근 7일";
    when_30d: "last 30 days", "최근 30일";
    when_range: "from – to", "기간 지정";
    search_summary: "Studies {}–{}{}, newest first ({} ms)", "검사 {}–{}{}, 최신순 ({} ms)";
    search_of_more: " of more", " (더 있음)";
    report_reported: "reported", "판독 완료";
    report_draft: "draft", "판독 중";

    // password.html: the account page.
    password_title: "Change password", "비밀번호 변경";
    password_role: "Your role:", "역할:";
    password_first: "This is the first login with a generated password: choose your own to continue.", "생성된 비밀번호로 처음 로그인했습니다. 계속하려면 새 비밀번호를 정하십시오.";
    password_current: "Current password", "현재 비밀번호";
    password_new: "New password (at least {} characters)", "새 비밀번호 (최소 {}자)";
    password_again: "New password again", "새 비밀번호 확인";
    password_button: "Change password", "비밀번호 변경";
    password_changed: "Password changed.", "비밀번호가 변경되었습니다.";
    password_tokens: "API tokens for DICOMweb", "DICOMweb용 API 토큰";
    password_tokens_for: "(scripts, OHIF and other viewers).", "(스크립트, OHIF 및 기타 뷰어).";
    language_title: "Language", "언어";
    language_browser: "Browser default", "브라우저 설정";
    language_save: "Save language", "언어 저장";
    language_saved: "Language saved.", "언어가 저장되었습니다.";
    language_unknown: "Unknown language.", "알 수 없는 언어입니다.";

    // status.html
    status_title: "Status", "상태";
    status_media_found: "Media found:", "매체 발견:";
    status_files_no_dicomdir: "files (no DICOMDIR: studies listed on import)", "개 파일 (DICOMDIR 없음: 가져올 때 검사 목록 표시)";
    status_study_word: "study", "건의 검사";
    status_studies_word: "studies", "건의 검사";
    status_import_link: "Import…", "가져오기…";
    status_media_unreadable: "could not be read:", "읽을 수 없음:";
    status_media_word: "Media", "매체";
    status_appliance: "Appliance", "장비";
    status_version: "Version", "버전";
    status_uptime: "Up for", "가동 시간";
    status_hostname: "Host name", "호스트 이름";
    status_addresses: "Addresses", "주소";
    status_ae: "AE title", "AE 타이틀";
    status_dicom_port: "DICOM port", "DICOM 포트";
    status_not_accepting: "(not accepting)", "(수신 중지)";
    status_web_port: "Web port", "웹 포트";
    status_dicom_tls_port: "DICOM TLS port", "DICOM TLS 포트";
    status_https_port: "HTTPS port", "HTTPS 포트";
    status_fingerprint: "Certificate SHA-256", "인증서 SHA-256";
    status_fingerprint_compare: "(compare with what your browser shows for this site)", "(브라우저가 이 사이트에 대해 표시하는 값과 비교하십시오)";
    status_storage: "Storage", "저장소";
    status_data_volume: "Data volume", "데이터 볼륨";
    status_total: "Total", "전체";
    status_used: "Used", "사용";
    status_free: "Free", "여유";
    status_patients: "Patients", "환자";
    status_studies: "Studies", "검사";
    status_instances: "Instances", "영상";
    status_conflicts: "Conflicts", "충돌";
    status_resolve: "resolve", "해결";
    status_receiving: "Receiving", "수신";
    status_refusing: "refusing new images: disk nearly full", "새 영상 거부 중: 디스크가 거의 가득 참";
    status_traffic: "Traffic", "통신";
    status_studies_today: "Studies today", "오늘 검사";
    status_images_today: "Images today", "오늘 영상";
    status_active_assoc: "Active associations", "활성 연결";
    status_assoc_total: "Associations since start", "시작 이후 연결";
    status_rejected: "rejected", "거부";
    status_stores_failed: "Stores failed", "저장 실패";
    status_audit_forwarding: "Audit forwarding", "감사 기록 전송";
    status_collector: "Collector", "수집 서버";
    status_connection: "Connection", "연결";
    status_connected_tls: "connected (TLS)", "연결됨 (TLS)";
    status_not_connected: "not connected", "연결 안 됨";
    status_waiting: "Waiting to be sent", "전송 대기";
    status_records: "record(s)", "건";
    status_sent: "Sent since start", "시작 이후 전송";
    status_last_error: "Last error", "마지막 오류";
    status_backup: "Backup", "백업";
    status_folder: "Folder", "폴더";
    status_last_complete: "Last complete", "마지막 완료";
    status_files: "files", "개 파일";
    status_copied: "copied", "개 복사";
    status_never: "never", "없음";
    status_too_old: "— too old", "— 너무 오래됨";
    status_next: "Next", "다음";
    status_running: "running now", "실행 중";
    status_last_received: "Last studies received", "최근 수신 검사";
    status_received: "Received", "수신 시각";
    status_from_ae: "From (AE)", "송신 (AE)";
    status_nothing_received: "Nothing received since the appliance started.", "장비 시작 이후 수신한 것이 없습니다.";
    status_recent_errors: "Recent errors", "최근 오류";
    status_none: "None.", "없음.";
    status_for_scripts: "for scripts.", "(스크립트용).";

    // study.html: one study
    study_patient: "Patient", "환자";
    study_study: "Study", "검사";
    study_date: "Date", "검사 일시";
    study_modalities: "Modalities", "장비 종류";
    study_key_images: "Key images", "주요 영상";
    study_uid: "Study UID", "Study UID";
    study_exam: "Scheduled exam", "예약된 검사";
    study_performed: "Performed (MPPS)", "수행 (MPPS)";
    study_open_viewer: "Open viewer", "뷰어 열기";
    study_open_ohif: "Open in OHIF", "OHIF에서 열기";
    study_zip: "Download ZIP", "ZIP 다운로드";
    study_export: "Export media…", "매체로 내보내기…";
    study_send_to: "Send to", "전송 대상";
    study_series_label: "Series", "시리즈";
    study_whole: "whole study", "검사 전체";
    study_send: "Send", "전송";
    study_anonymize: "Anonymize…", "익명화…";
    study_anon_explain: "A copy by the DICOM Basic Application Level Confidentiality Profile (PS3.15 Annex E): names,
IDs, dates, addresses, device identity, descriptions and private data removed or replaced, new
UIDs. The study itself is not changed.", "DICOM 기본 응용 수준 기밀성 프로파일(PS3.15 Annex E)에 따른 사본: 이름, ID, 날짜, 주소, 장비 식별 정보, 설명 및 사설 데이터를 제거하거나 대체하고 새 UID를 부여합니다. 원래 검사는 변경되지 않습니다.";
    study_burn_in_1: "This study has", "이 검사에는 다음 영상이 있습니다:";
    study_burn_in_2: "images: such images often have the patient's name burned into the pixels, which anonymization
does NOT remove. Images marked Burned In Annotation = YES are listed as not de-identified.", "이러한 영상은 환자 이름이 픽셀에 새겨져 있는 경우가 많으며, 익명화로 제거되지 않습니다. Burned In Annotation = YES로 표시된 영상은 비식별화되지 않은 것으로 표시됩니다.";
    study_pseudonym: "Pseudonym (patient name)", "가명 (환자 이름)";
    study_pseudonym_id: "Pseudonym patient ID", "가명 환자 ID";
    study_keep_dates: "Keep dates and times (Retain Longitudinal Temporal Information, full dates)", "날짜와 시각 유지 (Retain Longitudinal Temporal Information, 전체 날짜)";
    study_keep_device: "Keep device identity (Retain Device Identity)", "장비 식별 정보 유지 (Retain Device Identity)";
    study_keep_desc: "Keep descriptions, cleaned of the patient's name and IDs (Clean Descriptors)", "설명 유지, 환자 이름과 ID는 제거 (Clean Descriptors)";
    study_anon_new: "Anonymize as new study", "새 검사로 익명화";
    study_anon_zip: "Download anonymized ZIP", "익명화된 ZIP 다운로드";
    study_report: "Report", "판독";
    study_current: "(current)", "(현재)";
    study_amendment: "amendment", "· 수정본";
    study_findings_h: "Findings", "소견";
    study_impression_h: "Impression", "결론";
    study_printable: "Printable view", "인쇄용 보기";
    study_no_report: "No signed report yet.", "서명된 판독이 아직 없습니다.";
    study_write_report: "Write the report", "판독 작성";
    study_amend_report: "Amend the report", "판독 수정";
    study_draft_by: "Draft saved by", "임시 저장한 사람:";
    study_findings: "Findings", "소견";
    study_impression: "Impression", "결론";
    study_save_draft: "Save draft", "임시 저장";
    study_sign_report: "Sign report", "판독 서명";
    study_sign_amend: "Sign amendment", "수정본 서명";
    study_series_h: "Series", "시리즈";
    study_images: "image(s)", "개 영상";
    study_view: "View", "보기";
    study_header: "DICOM header", "DICOM 헤더";
    study_split: "Split into a new study…", "새 검사로 분리…";
    study_split_patient: "of patient ID (empty: this patient)", "환자 ID (비우면: 이 환자)";
    study_split_button: "Split series", "시리즈 분리";
    study_correct: "Correct", "수정";
    study_correct_explain: "Changes are written to every instance concerned at once, listed under", "변경은 해당하는 모든 인스턴스에 한 번에 기록되며, 다음에 기록되어 되돌릴 수 있습니다:";
    study_undo: "and can be undone there.", "(되돌리기 가능).";
    study_edit_patient: "Edit patient", "환자 정보 수정";
    study_edit_patient_explain: "Changes this patient in all of their studies.", "이 환자의 모든 검사에서 변경됩니다.";
    study_name: "Name (FAMILY^GIVEN)", "이름 (성^이름)";
    study_issuer: "Issuer of Patient ID", "환자 ID 발급 기관";
    study_birth: "Birth date (YYYYMMDD)", "생년월일 (YYYYMMDD)";
    study_sex: "Sex (M, F, O)", "성별 (M, F, O)";
    study_save_patient: "Save patient", "환자 저장";
    study_edit_study: "Edit study", "검사 정보 수정";
    study_date_edit: "Date (YYYYMMDD)", "검사일 (YYYYMMDD)";
    study_time_edit: "Time (HHMMSS)", "검사 시각 (HHMMSS)";
    study_study_id: "Study ID", "검사 ID";
    study_save_study: "Save study", "검사 저장";
    study_move: "Move to patient…", "다른 환자로 이동…";
    study_move_explain: "The study was sent under the wrong patient: it takes the other patient's ID, name, birth date and sex.", "검사가 잘못된 환자로 전송된 경우: 다른 환자의 ID, 이름, 생년월일, 성별을 따릅니다.";
    study_move_button: "Move study", "검사 이동";
    study_merge: "Merge patient into…", "환자 병합…";
    study_merge_explain: "Two records are the same person: every study of this patient moves to the other one, taking its ID, name, birth date, sex and issuer.", "두 기록이 같은 사람인 경우: 이 환자의 모든 검사가 다른 환자로 옮겨지며 그 ID, 이름, 생년월일, 성별, 발급 기관을 따릅니다.";
    study_into: "into patient ID", "병합 대상 환자 ID";
    study_merge_button: "Merge patient", "환자 병합";
    study_delete_h: "Delete", "삭제";
    study_delete_confirm: "yes, delete this study (kept in the trash; restorable under Operations until purged)", "예, 이 검사를 삭제합니다 (휴지통에 보관되며, 비우기 전까지 작업 내역에서 복원 가능)";
    study_delete_button: "Delete study", "검사 삭제";

    // users.html
    users_delete_q: "Delete the user", "사용자를 삭제하시겠습니까:";
    users_delete_explain: "They are logged out and cannot log in again.", "? 로그아웃되며 다시 로그인할 수 없습니다.";
    users_yes_delete: "Yes, delete", "예, 삭제:";
    users_cancel: "Cancel", "취소";
    users_name: "Name", "이름";
    users_role: "Role", "역할";
    users_last_login: "Last login", "마지막 로그인";
    users_set_role: "Set role", "역할 지정";
    users_delete: "Delete…", "삭제…";
    users_reset: "Reset password", "비밀번호 재설정";
    users_new_pw_for: "New password for", "새 비밀번호:";
    users_new_pw_note: "(they change it at their next login)", "(다음 로그인 때 변경해야 함)";
    users_set: "Set", "설정";
    users_logged_in: "Logged in now", "현재 로그인";
    users_user: "User", "사용자";
    users_from: "From", "접속 주소";
    users_since: "Since", "시작";
    users_end: "End session", "세션 종료";
    users_add_h: "Add a user", "사용자 추가";
    users_initial: "Initial password (they change it at first login)", "초기 비밀번호 (첫 로그인 때 변경)";
    users_add: "Add", "추가";

    // worklist.html
    wl_day: "Day", "날짜";
    wl_show: "Show", "보기";
    wl_register: "Register an exam", "검사 접수";
    wl_time: "Time", "시각";
    wl_station: "Station", "장비 AE";
    wl_procedure: "Procedure", "검사 항목";
    wl_state: "State", "상태";
    wl_performed: "Performed", "수행";
    wl_cancel: "Cancel", "취소";
    wl_discontinue: "Discontinue", "중단";
    wl_none: "No exams on this day.", "이 날짜에 검사가 없습니다.";

    // register.html
    reg_find: "Find a patient", "환자 찾기";
    reg_find_hint: "name (KIM* or 김) or ID", "이름 (KIM* 또는 김) 또는 ID";
    reg_find_button: "Find", "찾기";
    reg_use: "Use", "선택";
    reg_no_patient: "No patient in the archive matches: type a new one below.", "일치하는 환자가 없습니다. 아래에 새 환자를 입력하십시오.";
    reg_issuer: "Issuer of ID", "ID 발급 기관";
    reg_optional: "optional", "선택 사항";
    reg_family: "Family name", "성 (영문)";
    reg_given: "Given name", "이름 (영문)";
    reg_exam: "Exam", "검사";
    reg_station: "Station AE", "장비 AE";
    reg_accession: "Accession number", "접수 번호";
    reg_generated: "generated", "자동 생성";
    reg_performing: "Performing physician", "시행 의사";
    reg_schedule: "Schedule", "예약";

    // import.html
    imp_h1: "Import DICOM media", "DICOM 매체 가져오기";
    imp_explain_1: "A ZIP of a patient's CD, DVD or USB stick (up to", "환자의 CD, DVD 또는 USB 메모리의 ZIP (최대";
    imp_explain_2: "MB). Its DICOMDIR says which
files to take; without one every file is read. The studies found are listed before anything is
imported; each image is stored as a DICOM C-STORE would be (duplicates are not stored twice).", "MB). DICOMDIR가 가져올 파일을 정하며, 없으면 모든 파일을 읽습니다. 가져오기 전에 찾은 검사 목록을 보여 주고, 각 영상은 DICOM C-STORE와 같이 저장됩니다 (중복은 두 번 저장되지 않음).";
    imp_inserted: "Media inserted into the box:", "장비에 삽입된 매체:";
    imp_inserted_2: "Its studies are listed below; nothing is imported until you choose.", "검사 목록이 아래에 있습니다. 선택하기 전에는 아무것도 가져오지 않습니다.";
    imp_zip: "ZIP file", "ZIP 파일";
    imp_upload: "Upload and list", "올리고 목록 보기";
    imp_files: "Files", "파일";
    imp_reconcile: "From another hospital: file under our patient ID", "다른 병원의 검사: 우리 환자 ID로 보관";
    imp_our_id: "our patient ID", "우리 환자 ID";
    imp_kept: "(the original ID is kept in Other Patient IDs)", "(원래 ID는 Other Patient IDs에 보관됨)";
    imp_import: "Import chosen studies", "선택한 검사 가져오기";
    imp_search: "Search the imported studies", "가져온 검사 검색";

    // media.html
    study_export_t: "Export media", "매체로 내보내기";
    media_h1: "Export as DICOM media", "DICOM 매체로 내보내기";
    media_explain_1: "A DICOM file-set (PS3.10): a", "DICOM 파일 세트 (PS3.10):";
    media_explain_2: "the images under", "영상은";
    media_explain_3: "as a ZIP to unpack onto a USB stick or to
burn onto a CD/DVD as it is.", "— USB 메모리에 풀거나 그대로 CD/DVD에 구울 ZIP.";
    media_keep: "As stored", "저장된 그대로";
    media_keep_explain: ": the images' own compression kept (fast; some
viewers on other sites may not read JPEG 2000 or JPEG-LS).", ": 영상의 원래 압축 유지 (빠름; 다른 기관의 일부 뷰어는 JPEG 2000 또는 JPEG-LS를 읽지 못할 수 있음).";
    media_uncompressed: "Uncompressed", "비압축";
    media_about: "about", "약";
    media_uncompressed_explain: ": every image in explicit VR little
endian, readable everywhere (STD-GEN-CD).", ": 모든 영상을 explicit VR little endian으로, 어디서나 읽을 수 있음 (STD-GEN-CD).";
    media_undecompressible: "image(s) cannot be decompressed by this box and stay as stored.", "개 영상은 이 장비에서 압축을 풀 수 없어 저장된 그대로 남습니다.";
    media_back: "Back to the study", "검사로 돌아가기";

    // peers.html
    peers_title: "DICOM peers", "DICOM 장비";
    peers_access: "Access", "접근";
    peers_open: "Open: any device may query, retrieve and store. Set", "개방: 모든 장비가 조회, 가져오기, 저장할 수 있습니다. 설정에서 다음을 지정하십시오:";
    peers_open_2: "in the settings.", ".";
    peers_learning: "Learning until", "학습 중, 종료:";
    peers_learning_2: ": devices that store are added below as store-only peers. Query and retrieve always need a peer with that right.", "— 저장하는 장비는 아래에 저장 전용 장비로 추가됩니다. 조회와 가져오기에는 항상 해당 권한이 있는 장비가 필요합니다.";
    peers_close_learning: "Close learning now", "지금 학습 종료";
    peers_closed: "Closed: only the peers below may associate", "폐쇄: 아래 장비만 연결할 수 있습니다";
    peers_learning_ended: "(learning ended", "(학습 종료:";
    peers_learn_for: "Learn again for", "다시 학습할 기간";
    peers_days: "days", "일";
    peers_learn_again: "Learn again", "다시 학습";
    peers_refused_h: "Refused", "거부됨";
    peers_no_refused: "No device was refused.", "거부된 장비가 없습니다.";
    peers_last_try: "Last try", "마지막 시도";
    peers_tries: "Tries", "시도 횟수";
    peers_allow_store: "Allow to store", "저장 허용";
    peers_host: "Host", "호스트";
    peers_rights: "Rights", "권한";
    peers_needs: "Needs", "필요 조건";
    peers_source: "Source", "출처";
    peers_first_seen: "First seen", "처음 확인";
    peers_last_seen: "Last seen", "마지막 확인";
    peers_last_address: "Last address", "마지막 주소";
    peers_test: "Test", "연결 시험";
    peers_set_rights: "Set rights", "권한 지정";
    peers_set_address: "Set address", "주소 지정";
    peers_remove: "Remove", "삭제";
    peers_add_h: "Add a peer", "장비 추가";
    peers_host_hint: "optional: where it listens", "선택 사항: 수신 주소";
    peers_port: "Port", "포트";
    peers_tls_ca: "TLS (trusted through the clinic CA)", "TLS (병원 CA로 신뢰)";
    peers_rights_explain: "Rights:", "권한:";
    peers_rights_move: "(be a C-MOVE destination: needs a host and port)", "(C-MOVE 대상: 호스트와 포트 필요)";

    // forwarding.html
    fw_nothing: "Nothing waiting: every image was delivered.", "대기 중인 것이 없습니다. 모든 영상이 전송되었습니다.";
    fw_peer: "Peer", "대상 장비";
    fw_waiting: "Waiting", "대기";
    fw_failing: "Failing", "실패 중";
    fw_retry_all: "Retry all", "모두 재시도";
    fw_cancel_all: "Cancel all", "모두 취소";
    fw_images: "Images", "영상";
    fw_attempts: "Attempts", "시도";
    fw_next_try: "Next try", "다음 시도";
    fw_queued_by: "Queued by", "요청 출처";
    fw_retry: "Retry", "재시도";
    fw_more: "More studies are queued than shown here; the totals above count them all.", "여기 표시된 것보다 많은 검사가 대기 중입니다. 위의 합계는 모두를 포함합니다.";

    // remote.html
    remote_title: "Other PACS", "다른 PACS";
    remote_h1: "Search another PACS", "다른 PACS 검색";
    remote_none: "No PACS to search is set up (", "검색할 PACS가 설정되지 않았습니다 (설정의";
    remote_none_2: "in the settings).", ").";
    remote_study_on: "study on", "건의 검사:";
    remote_studies_on: "studies on", "건의 검사:";
    remote_fetches: "Fetches", "가져오기 목록";
    remote_here: "on this box", "이 장비에 있음";
    remote_fetch: "Fetch", "가져오기";

    // audit.html
    audit_title: "Audit trail", "감사 기록";
    audit_explain: "Every login, search, view and download of patient data, every change, and every DICOM
association, query, retrieval and store, newest first. The trail is hash-chained:", "환자 데이터의 모든 로그인, 검색, 조회, 다운로드, 모든 변경, 그리고 모든 DICOM 연결, 조회, 가져오기, 저장을 최신순으로 보여 줍니다. 기록은 해시 체인으로 연결되어 있습니다:";
    audit_verify: "on the box names any record that was edited or removed.", "명령은 수정되거나 삭제된 기록을 찾아냅니다.";
    audit_actor: "User or AE", "사용자 또는 AE";
    audit_patient: "Patient or study", "환자 또는 검사";
    audit_action: "Action", "동작";
    audit_filter: "Filter", "필터";
    audit_csv: "Export CSV", "CSV 내보내기";
    audit_none: "No records match.", "일치하는 기록이 없습니다.";
    audit_user_ae: "User / AE", "사용자 / AE";
    audit_outcome: "Outcome", "결과";
    status_studies_1: "Study", "검사";
    audit_detail: "Detail", "상세";
    audit_showing: "Showing the newest", "최신 기록";
    audit_narrow: "; narrow the filter or export CSV for all.", "건만 표시. 전체를 보려면 필터를 좁히거나 CSV로 내보내십시오.";

    // report.html
    report_h1: "Diagnostic imaging report", "영상 판독 보고서";
    report_superseded: "This version was amended; a later version exists.", "이 판은 수정되었습니다. 이후 판이 있습니다.";
    report_amends: "Amends report", "수정 대상 판독:";
    report_signed_by: "Signed by", "서명:";
    report_verified: "verified", "· 확인됨";

    // anonymized.html
    anon_title: "Anonymized", "익명화 완료";
    anon_h1: "Anonymized copy", "익명화된 사본";
    anon_from: "From study", "원본 검사";
    anon_new: "New study", "새 검사";
    anon_of: "of", "/";
    anon_written: "written", "개 기록";
    anon_stored: "stored", "개 저장";
    anon_burned: "image(s) have
Burned In Annotation = YES: their pixels may show the patient's name and are NOT de-identified.", "개 영상이 Burned In Annotation = YES입니다. 픽셀에 환자 이름이 보일 수 있으며 비식별화되지 않았습니다.";
    anon_possibly: "image(s) of a modality
that often burns text into the pixels do not say whether they do: check them before sharing.", "개 영상은 픽셀에 글자를 새기는 경우가 많은 장비의 것인데 그 여부를 밝히지 않습니다. 공유하기 전에 확인하십시오.";
    anon_failed: "instance(s) could not be anonymized and were left out:", "개 인스턴스는 익명화할 수 없어 제외되었습니다:";

    // anonymizing.html
    anoning_title: "Anonymizing", "익명화 중";
    anoning_h1: "Anonymizing…", "익명화 중…";
    anoning_making: "Making an anonymized copy of study", "다음 검사의 익명화된 사본을 새 검사로 만드는 중:";
    anoning_as_new: "as a new study.
The result shows here when it is done.", "완료되면 결과가 여기에 표시됩니다.";
    anoning_instances: "instances", "개 인스턴스";
    anoning_reload: "Reload this page to see whether it is done.", "완료 여부를 보려면 이 페이지를 새로 고치십시오.";

    // conflicts.html
    conf_explain: "Instances that arrived with the SOP Instance UID of an archived instance but other content.
The archived copy is served until you decide.", "보관된 인스턴스와 SOP Instance UID가 같지만 내용이 다른 인스턴스입니다. 결정할 때까지 보관된 사본이 제공됩니다.";
    conf_keep: "Keep", "유지";
    conf_keep_explain: "deletes the newcomer,", "는 새로 온 것을 삭제하고,";
    conf_replace: "Replace", "교체";
    conf_replace_explain: "makes
the newcomer the archived instance,", "는 새로 온 것을 보관 인스턴스로 만들며,";
    conf_discard: "Discard", "폐기";
    conf_discard_explain: "deletes the newcomer without a verdict.", "는 판정 없이 새로 온 것을 삭제합니다.";
    conf_cap: "; past the cap further conflicting copies are refused.", "; 한도를 넘으면 이후의 충돌 사본은 거부됩니다.";
    conf_none: "No conflicts.", "충돌이 없습니다.";
    conf_patient: "Patient (archived)", "환자 (보관본)";
    conf_study: "Study (archived)", "검사 (보관본)";
    conf_size: "Size", "크기";
    conf_from_ae: "From AE", "송신 AE";
    conf_same: "(same as archived)", "(보관본과 같음)";

    // operations.html
    ops_explain_1: "Every correction, move and delete, newest first.", "모든 수정, 이동, 삭제를 최신순으로 보여 줍니다.";
    ops_undo: "Undo", "되돌리기";
    ops_explain_2: "puts back the exact previous
files (a delete's undo restores it); an operation that a later one changed again is undone after
that one. Previous versions stay in the trash until it is purged.", "는 이전 파일을 그대로 되돌립니다 (삭제를 되돌리면 복원됨). 이후 작업이 다시 변경한 작업은 그 작업 다음에 되돌립니다. 이전 판은 휴지통을 비울 때까지 남아 있습니다.";
    ops_purge: "Purge trash now", "지금 휴지통 비우기";
    ops_purge_note: "(no operation can be undone afterwards)", "(이후에는 어떤 작업도 되돌릴 수 없음)";
    ops_none: "No operations yet.", "아직 작업이 없습니다.";
    ops_when: "When", "일시";
    ops_what: "What", "작업";
    ops_target: "Target", "대상";
    ops_changes: "Changes", "변경 내용";

    // certificate.html
    cert_explain: "Served on the HTTPS and DICOM TLS ports. Staff compare the fingerprint with what their browser or modality shows.", "HTTPS 및 DICOM TLS 포트에서 사용됩니다. 직원은 지문을 브라우저나 장비에 표시되는 값과 비교합니다.";
    cert_subject: "Subject", "주체";
    cert_issuer: "Issuer", "발급자";
    cert_self: "(self-signed)", "(자체 서명)";
    cert_valid: "Valid", "유효 기간";
    cert_names: "Names", "이름";
    cert_chain: "Chain", "체인";
    cert_certs: "certificate(s)", "개 인증서";
    cert_install_h: "Install the clinic's certificate", "병원 인증서 설치";
    cert_chain_label: "Certificate chain (PEM, the box's certificate first)", "인증서 체인 (PEM, 이 장비의 인증서가 먼저)";
    cert_key: "Private key (PEM, unencrypted)", "개인 키 (PEM, 암호화하지 않음)";
    cert_install: "Install", "설치";
    cert_new_h: "New self-signed certificate", "새 자체 서명 인증서";
    cert_new_explain: "For the box's names and addresses now. Browsers and modalities that trusted the old one must be told the new fingerprint.", "현재 장비의 이름과 주소로 만듭니다. 이전 인증서를 신뢰하던 브라우저와 장비에 새 지문을 알려야 합니다.";
    cert_make: "Make a new one", "새로 만들기";
    cert_off: "TLS is off on this box (", "이 장비에서 TLS가 꺼져 있습니다 (";
    cert_off_2: "are 0).", "= 0).";

    // tokens.html
    tok_title: "API tokens", "API 토큰";
    tok_explain_1: "A token lets a script or a viewer (OHIF, Weasis, dicomweb-client) search and retrieve
images over DICOMweb at", "토큰이 있으면 스크립트나 뷰어 (OHIF, Weasis, dicomweb-client)가 본인의 역할로 다음 주소의 DICOMweb으로 영상을 검색하고 가져올 수 있습니다:";
    tok_explain_2: "as you, with your role. Send it as", ". 다음과 같이 보내십시오:";
    tok_explain_3: "Revoke a token you no longer use.", "더 이상 쓰지 않는 토큰은 폐기하십시오.";
    tok_starts: "Starts with", "시작 문자";
    tok_created: "Created", "생성일";
    tok_revoke: "Revoke", "폐기";
    tok_hint: "OHIF on the reading room PC", "판독실 PC의 OHIF";
    tok_create: "Create token", "토큰 만들기";

    // fetches.html
    fetch_h1: "Fetches from other PACS", "다른 PACS에서 가져오기";
    fetch_opening: "The viewer opens when the study has arrived.", "검사가 도착하면 뷰어가 열립니다.";
    fetch_started: "Started", "시작";
    fetch_by: "By", "요청자";
    fetch_received: "received", "수신";
    fetch_failed: "failed", "실패";
    fetch_to_go: "to go", "남음";
    fetch_none: "No fetch since the box started.", "장비 시작 이후 가져온 것이 없습니다.";

    // header.html
    hdr_back: "back to the study", "검사로 돌아가기";
    hdr_download: "download .dcm", ".dcm 다운로드";
    hdr_tag: "Tag", "태그";
    hdr_value: "Value", "값";

    // Messages made in Rust (shown through `t.tr` when made below the page layer).
    msg_no_user: "no such user", "해당 사용자가 없습니다";
    msg_current_wrong: "the current password is wrong", "현재 비밀번호가 올바르지 않습니다";
    msg_must_differ: "the new password must differ from the current one", "새 비밀번호는 현재 비밀번호와 달라야 합니다";
    msg_differ: "the two new passwords differ", "새 비밀번호 두 개가 서로 다릅니다";
    msg_too_short: "the new password needs at least 10 characters", "새 비밀번호는 최소 10자여야 합니다";
    msg_run: "the new password is a run of one character or of counted-up characters (like 1234567890)", "새 비밀번호가 한 문자의 반복이거나 연속된 문자입니다 (예: 1234567890)";
    msg_common: "the new password contains a common password; choose another", "새 비밀번호에 흔한 비밀번호가 들어 있습니다. 다른 것을 고르십시오";
    msg_has_name: "the new password contains the user name", "새 비밀번호에 사용자 이름이 들어 있습니다";
    msg_first_boot: "the new password was the first-boot password; choose another", "새 비밀번호가 최초 부팅 비밀번호입니다. 다른 것을 고르십시오";
    msg_user_names: "User names are 1-32 letters, digits, . _ -", "사용자 이름은 1–32자의 영문자, 숫자, . _ - 입니다";
    msg_choose_role: "Choose one of the roles listed.", "목록의 역할 중 하나를 고르십시오.";
    msg_user_exists: "A user of that name exists.", "같은 이름의 사용자가 있습니다.";
    msg_other_admin: "Another admin changes your role.", "본인의 역할은 다른 관리자가 변경합니다.";
    msg_no_user_name: "No user of that name.", "해당 이름의 사용자가 없습니다.";
    msg_own_password: "Change your own password on your account page.", "본인의 비밀번호는 계정 페이지에서 변경하십시오.";
    msg_not_yourself: "You cannot delete yourself.", "자기 자신은 삭제할 수 없습니다.";
    msg_own_session: "Log out to end your own session.", "본인의 세션은 로그아웃으로 종료하십시오.";
    msg_session_ended: "That session has already ended.", "그 세션은 이미 종료되었습니다.";
    msg_token_name: "Give the token a name (up to 80 characters).", "토큰 이름을 입력하십시오 (최대 80자).";
    msg_too_many_tokens: "Too many tokens: revoke one first.", "토큰이 너무 많습니다. 먼저 하나를 폐기하십시오.";
    msg_token_created: "Token created. Copy it now: it is not shown again.", "토큰이 만들어졌습니다. 지금 복사하십시오. 다시 표시되지 않습니다.";
    msg_token_revoked: "Token revoked.", "토큰이 폐기되었습니다.";
    msg_no_token: "No such token.", "해당 토큰이 없습니다.";
    msg_nothing_queued: "Nothing queued there any more.", "그 대상에 더 이상 대기 중인 것이 없습니다.";
    msg_learning_closed: "Learning closed: unknown AEs are refused from now on.", "학습 종료: 이제부터 알 수 없는 AE는 거부됩니다.";
    msg_no_echo: "C-ECHO is not available here", "여기서는 C-ECHO를 사용할 수 없습니다";
    msg_tick_delete: "Tick “yes, delete” to delete the study.", "검사를 삭제하려면 “예, 삭제”를 선택하십시오.";
    msg_which_exam: "which exam? (accession)", "어느 검사입니까? (접수 번호)";
    msg_not_remote: "not a PACS to search or fetch from", "검색하거나 가져올 수 있는 PACS가 아닙니다";
    msg_tls_off: "TLS is off on this box (https_port and dicom_tls_port are 0).", "이 장비에서 TLS가 꺼져 있습니다 (https_port와 dicom_tls_port가 0).";
    msg_user_added: "User {} added.", "사용자 {}이(가) 추가되었습니다.";
    msg_role_now: "{} is now {}; they log in again.", "{}의 역할이 이제 {}입니다. 다시 로그인해야 합니다.";
    msg_pw_set: "New password set for {}; they choose their own at the next login.", "{}의 새 비밀번호가 설정되었습니다. 다음 로그인 때 본인이 새로 정합니다.";
    msg_user_deleted: "User {} deleted.", "사용자 {}이(가) 삭제되었습니다.";
    msg_session_of: "Session of {} ended.", "{}의 세션이 종료되었습니다.";
    msg_exam_scheduled: "Exam {} scheduled.", "검사 {}이(가) 예약되었습니다.";

    // viewer.html and the viewer's scripts (`viewer*.js` look these up by their English through
    // `web-ui/static/i18n.js`; the page sends them as JSON, `Strings::script_texts`).
    viewer_title: "Viewer", "뷰어";
    viewer_series: "Series", "시리즈";
    viewer_compare: "Compare", "비교";
    viewer_compare_t: "Compare with another study of this patient", "이 환자의 다른 검사와 비교";
    viewer_key_t: "Key image (K)", "주요 영상 (K)";
    viewer_key_needs_role: "Key image (K): needs the report role", "주요 영상 (K): 판독 권한이 필요합니다";
    viewer_key_images: "Key images", "주요 영상";
    viewer_mouse_tool: "Mouse tool", "마우스 도구";
    viewer_wl: "W/L", "W/L";
    viewer_wl_t: "Window/level (drag)", "윈도우/레벨 (드래그)";
    viewer_pan: "Pan", "이동";
    viewer_pan_t: "Pan (drag)", "이동 (드래그)";
    viewer_zoom: "Zoom", "확대";
    viewer_zoom_t: "Zoom (drag)", "확대/축소 (드래그)";
    viewer_scroll: "Scroll", "넘기기";
    viewer_scroll_t: "Scroll images (drag)", "영상 넘기기 (드래그)";
    viewer_measure: "Measure", "측정";
    viewer_length: "Length", "길이";
    viewer_length_t: "Length (drag from one end to the other)", "길이 (한쪽 끝에서 다른 쪽 끝까지 드래그)";
    viewer_angle: "Angle", "각도";
    viewer_angle_t: "Angle (drag the first arm to the vertex, then click or drag to the end of the second)", "각도 (첫 번째 변을 꼭짓점까지 드래그한 다음, 두 번째 변의 끝을 클릭하거나 드래그)";
    viewer_ellipse: "Ellipse", "타원";
    viewer_ellipse_t: "Ellipse ROI: mean, SD, min, max (drag)", "타원 ROI: 평균, 표준편차, 최소, 최대 (드래그)";
    viewer_rect: "Rect", "사각형";
    viewer_rect_t: "Rectangle ROI: mean, SD, min, max (drag)", "사각형 ROI: 평균, 표준편차, 최소, 최대 (드래그)";
    viewer_more_t: "More tools", "도구 더 보기";
    viewer_preset: "Window preset", "윈도우 프리셋";
    viewer_window: "Window…", "윈도우…";
    viewer_file_default: "File default", "파일 기본값";
    viewer_ct_lung: "CT lung", "CT 폐";
    viewer_ct_bone: "CT bone", "CT 뼈";
    viewer_ct_brain: "CT brain", "CT 뇌";
    viewer_ct_abdomen: "CT abdomen", "CT 복부";
    viewer_rotate_t: "Rotate 90°", "90° 회전";
    viewer_fliph_t: "Flip horizontal", "좌우 뒤집기";
    viewer_flipv_t: "Flip vertical", "상하 뒤집기";
    viewer_invert_t: "Invert", "흑백 반전";
    viewer_invert: "Inv", "반전";
    viewer_bright: "Bright", "밝기";
    viewer_contrast: "Contrast", "대비";
    viewer_filter: "Filter", "필터";
    viewer_no_filter: "No filter", "필터 없음";
    viewer_edge: "Edge", "윤곽 강조";
    viewer_sharpen: "Sharpen", "선명하게";
    viewer_emboss: "Emboss", "엠보스";
    viewer_cine: "Cine", "시네";
    viewer_stop_cine: "Stop cine", "시네 정지";
    viewer_reset: "Reset", "초기화";
    viewer_measurements: "Measurements", "측정값";
    viewer_image: "Image", "영상";
    viewer_prior: "Prior study", "이전 검사";
    viewer_sync: "Sync scroll", "동기 스크롤";
    viewer_prior_close: "Close the prior study", "이전 검사 닫기";
    viewer_lock: "Lock offset", "간격 고정";
    viewer_lock_t: "Keep the offset the two panes have now: scrolling one moves the other by the same distance", "지금 두 창의 간격을 유지: 한 창을 넘기면 다른 창도 같은 거리만큼 이동";
    viewer_others: "Other studies of this patient", "이 환자의 다른 검사";
    viewer_others_hint: "Other studies of this patient, newest first:", "이 환자의 다른 검사 (최신순):";
    viewer_born: "born {}", "생년월일 {}";
    viewer_acc: "Acc {}", "접수 {}";
    // The overlay's words, measurement labels and the viewer scripts' messages.
    viewer_ov_series: "Series {}", "시리즈 {}";
    viewer_ov_image: "Image {} / {}", "영상 {} / {}";
    viewer_ov_frame: " (frame {})", " (프레임 {})";
    viewer_ov_loc: "Loc {}", "위치 {}";
    viewer_ov_thk: "Thk {}", "두께 {}";
    viewer_ov_wl: "W {}  L {}", "윈도우 {}  레벨 {}";
    viewer_ov_zoom: "Zoom {}%", "확대 {}%";
    viewer_ov_inv: "inv", "반전";
    viewer_ov_preview: "preview", "미리보기";
    viewer_uncalibrated: "uncalibrated", "보정 안 됨";
    viewer_at_detector: "at detector", "검출기 기준";
    viewer_roi: "mean {} SD {} min {} max {}", "평균 {} 표준편차 {} 최소 {} 최대 {}";
    viewer_waiting: "waiting for full pixels…", "전체 픽셀을 기다리는 중…";
    viewer_remove_t: "Remove this measurement", "이 측정값 삭제";
    viewer_remove: "Remove {} {}", "{} {} 삭제";
    viewer_preview_only: "Preview only, no window/level here ({})", "미리보기만 표시되며 윈도우/레벨은 사용할 수 없습니다 ({})";
    viewer_no_images: "This series has no images.", "이 시리즈에는 영상이 없습니다.";
    viewer_no_series: "This study has no series.", "이 검사에는 시리즈가 없습니다.";
    viewer_no_list: "Cannot list the series of this study: {}", "이 검사의 시리즈 목록을 가져올 수 없습니다: {}";
    viewer_one_image: "{} (1 image)", "{} (영상 1장)";
    viewer_images: "{} ({} images)", "{} (영상 {}장)";
    viewer_keys_error: "Key images: {}", "주요 영상: {}";
    viewer_keys_role: "Marking key images needs the physician (report) role.", "주요 영상 표시에는 의사(판독) 권한이 필요합니다.";
    viewer_keys_not_saved: "Key images not saved: {}", "주요 영상이 저장되지 않았습니다: {}";
    viewer_err_415: "This image cannot be decoded here (415): {}", "이 영상은 여기에서 디코딩할 수 없습니다 (415): {}";
    viewer_err_422: "This image has no usable pixel data (422): {}", "이 영상에는 사용할 수 있는 픽셀 데이터가 없습니다 (422): {}";
    viewer_err_0: "The server did not answer: {}", "서버가 응답하지 않았습니다: {}";
    viewer_err: "Error {}: {}", "오류 {}: {}";
    viewer_loading: "Loading…", "불러오는 중…";
    viewer_no_prior: "No other study of this patient.", "이 환자의 다른 검사가 없습니다.";
    viewer_no_priors: "Cannot list the other studies: {}", "다른 검사 목록을 가져올 수 없습니다: {}";
    viewer_no_date: "no date", "날짜 없음";
    viewer_prior_size: "{} series, {} images", "시리즈 {}개, 영상 {}장";

    // import.js: upload, listing and progress lines.
    js_imp_uploading: "Uploading {}…", "{} 올리는 중…";
    js_imp_refused_upload: "Upload refused: {}", "업로드가 거부되었습니다: {}";
    js_imp_found: "{} file(s), {} study(ies) found", "파일 {}개, 검사 {}건을 찾았습니다";
    js_imp_missing: "; {} listed in DICOMDIR but missing", "; DICOMDIR에 있으나 없는 파일 {}개";
    js_imp_refused: "Refused: {}", "거부되었습니다: {}";
    js_imp_no_progress: "Progress unavailable: {}", "진행 상황을 알 수 없습니다: {}";
    js_imp_progress: "{} / {} files, {} MB/s, {} failed", "파일 {} / {}개, {} MB/s, 실패 {}개";
    js_imp_finished: " — finished: {}", " — 완료: {}";
    js_imp_reading: "Reading {}…", "{} 읽는 중…";
    js_imp_unreadable: "Media not readable: {}", "매체를 읽을 수 없습니다: {}";

    // worklist.js (the day's table, refreshed) and anonymize.js (a run's progress).
    js_wl_cancel: "Cancel", "취소";
    js_wl_discontinue: "Discontinue", "중단";
    js_wl_none: "No exams on this day.", "이 날짜에 검사가 없습니다.";
    js_wl_scheduled: "scheduled", "예약됨";
    js_wl_in_progress: "in progress", "진행 중";
    js_wl_completed: "completed", "완료";
    js_wl_discontinued: "discontinued", "중단됨";
    js_wl_cancelled: "cancelled", "취소됨";
    js_wl_reported: "reported", "판독 완료";
    js_anon_count: "{} of {}", "{} / {}";

    // The import's summary and the leads of its per-file reasons (made by pacsbox-media in
    // English; the progress answer translates them, `Strings::tr_lead`).
    imp_summary: "{} files: {} imported, {} duplicates, {} failed, {} studies", "파일 {}개: 가져옴 {}개, 중복 {}개, 실패 {}개, 검사 {}건";
    imp_why_short: "not a DICOM file (too short for a Part-10 header)", "DICOM 파일이 아닙니다 (Part-10 헤더보다 짧음)";
    imp_why_not_part10: "not a DICOM Part-10 file", "DICOM Part-10 파일이 아닙니다";
    imp_why_reading: "reading", "읽기 실패";
    imp_why_not_understood: "dataset cannot be understood", "데이터셋을 해석할 수 없습니다";
    imp_why_mismatch: "dataset does not match the request", "데이터셋이 요청과 맞지 않습니다";
    imp_why_reconcile: "reconciling the patient ID", "환자 ID 맞추기 실패";

    // Roles, states and error pages (data words shown through `t.tr`).
    role_user: "search, view and download images", "영상 검색, 조회, 다운로드";
    role_physician: "as user, and write the physician's report", "사용자 권한에 더해 판독 작성";
    role_editor: "as user, and correct, merge and delete archived data", "사용자 권한에 더해 보관 데이터 수정, 병합, 삭제";
    role_admin: "everything, including users, peers, certificates and the audit trail", "사용자, DICOM 장비, 인증서, 감사 기록을 포함한 모든 권한";
    state_scheduled: "scheduled", "예약됨";
    state_in_progress: "in progress", "진행 중";
    state_completed: "completed", "완료";
    state_discontinued: "discontinued", "중단됨";
    state_cancelled: "cancelled", "취소됨";
    state_reported: "reported", "판독 완료";
    state_done: "done", "완료";
    state_failed: "failed", "실패";
    state_fetching: "fetching", "가져오는 중";
    error_not_found: "not found", "찾을 수 없습니다";
    error_forbidden: "forbidden", "권한이 없습니다";
}
