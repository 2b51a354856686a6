//! The WS-Management messages of MS-WSMV's remote shell (section 3.1.4.1.x: Create,
//! Command, Send, Receive, Signal, Delete), built as text, and the answers read with
//! roxmltree by element name. Pure: no I/O, so every message is pinned by tests.

use base64::Engine;

pub const RESOURCE_CMD: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd";
pub const ACTION_CREATE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create";
pub const ACTION_DELETE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete";
pub const ACTION_COMMAND: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command";
pub const ACTION_SEND: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send";
pub const ACTION_RECEIVE: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive";
pub const ACTION_SIGNAL: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal";
pub const SIGNAL_TERMINATE: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate";
pub const STATE_DONE: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done";
/// The WSManFault code of an operation timeout: Receive found no output yet; ask again.
pub const FAULT_TIMED_OUT: &str = "2150858793";

/// What every message's header carries besides its action.
pub struct Header<'a> {
    pub to: &'a str,
    pub message_id: &'a str,
    /// Seconds the server may wait before answering (Receive's long poll).
    pub operation_timeout: u32,
    pub shell_id: Option<&'a str>,
    pub options: &'a [(&'a str, &'a str)],
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One envelope, in the namespaces and header order Windows and pywinrm use.
pub fn envelope(action: &str, h: &Header, body: &str) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\" \
         xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\" \
         xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\" \
         xmlns:p=\"http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd\" \
         xmlns:rsp=\"http://schemas.microsoft.com/wbem/wsman/1/windows/shell\">\n<env:Header>\n",
    );
    s.push_str(&format!("<a:To>{}</a:To>\n", escape(h.to)));
    s.push_str("<a:ReplyTo><a:Address mustUnderstand=\"true\">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>\n");
    s.push_str("<w:MaxEnvelopeSize mustUnderstand=\"true\">512000</w:MaxEnvelopeSize>\n");
    s.push_str(&format!(
        "<a:MessageID>uuid:{}</a:MessageID>\n",
        h.message_id
    ));
    s.push_str("<w:Locale xml:lang=\"en-US\" mustUnderstand=\"false\"/>\n");
    s.push_str("<p:DataLocale xml:lang=\"en-US\" mustUnderstand=\"false\"/>\n");
    s.push_str(&format!(
        "<w:OperationTimeout>PT{}S</w:OperationTimeout>\n",
        h.operation_timeout
    ));
    s.push_str(&format!(
        "<w:ResourceURI mustUnderstand=\"true\">{RESOURCE_CMD}</w:ResourceURI>\n"
    ));
    s.push_str(&format!(
        "<a:Action mustUnderstand=\"true\">{action}</a:Action>\n"
    ));
    if let Some(id) = h.shell_id {
        s.push_str(&format!(
            "<w:SelectorSet><w:Selector Name=\"ShellId\">{}</w:Selector></w:SelectorSet>\n",
            escape(id)
        ));
    }
    if !h.options.is_empty() {
        s.push_str("<w:OptionSet>");
        for (k, v) in h.options {
            s.push_str(&format!("<w:Option Name=\"{k}\">{v}</w:Option>"));
        }
        s.push_str("</w:OptionSet>\n");
    }
    s.push_str("</env:Header>\n<env:Body>");
    s.push_str(body);
    s.push_str("</env:Body>\n</env:Envelope>\n");
    s
}

/// Create: a cmd shell with stdin, stdout and stderr, UTF-8 (code page 65001).
pub fn create(h: &Header) -> String {
    envelope(
        ACTION_CREATE,
        h,
        "<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>",
    )
}

/// Command: `command_line` in the shell (its first word is the program).
pub fn command(h: &Header, command_line: &str) -> String {
    envelope(
        ACTION_COMMAND,
        h,
        &format!(
            "<rsp:CommandLine><rsp:Command>{}</rsp:Command></rsp:CommandLine>",
            escape(command_line)
        ),
    )
}

/// Send: `bytes` to the command's stdin; `end` closes it.
pub fn send(h: &Header, command_id: &str, bytes: &[u8], end: bool) -> String {
    envelope(
        ACTION_SEND,
        h,
        &format!(
            "<rsp:Send><rsp:Stream Name=\"stdin\" CommandId=\"{}\"{}>{}</rsp:Stream></rsp:Send>",
            escape(command_id),
            if end { " End=\"true\"" } else { "" },
            base64::engine::general_purpose::STANDARD.encode(bytes)
        ),
    )
}

/// Receive: what the command wrote since the last Receive, and whether it ended.
pub fn receive(h: &Header, command_id: &str) -> String {
    envelope(
        ACTION_RECEIVE,
        h,
        &format!(
            "<rsp:Receive><rsp:DesiredStream CommandId=\"{}\">stdout stderr</rsp:DesiredStream></rsp:Receive>",
            escape(command_id)
        ),
    )
}

/// Signal terminate: the command is over (or must be).
pub fn signal(h: &Header, command_id: &str) -> String {
    envelope(
        ACTION_SIGNAL,
        h,
        &format!(
            "<rsp:Signal CommandId=\"{}\"><rsp:Code>{SIGNAL_TERMINATE}</rsp:Code></rsp:Signal>",
            escape(command_id)
        ),
    )
}

/// Delete: the shell, by the same ResourceURI it was created with, so it never leaks.
pub fn delete(h: &Header) -> String {
    envelope(ACTION_DELETE, h, "")
}

/// A SOAP fault, in one sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// WSManFault's Code, when there is one (e.g. `2150858793`, a timeout).
    pub code: Option<String>,
    pub reason: String,
}

fn parse(xml: &str) -> Result<roxmltree::Document<'_>, String> {
    roxmltree::Document::parse(xml).map_err(|e| format!("not a SOAP answer ({e})"))
}

fn find<'a>(doc: &'a roxmltree::Document, name: &str) -> Option<roxmltree::Node<'a, 'a>> {
    doc.descendants()
        .find(|n| n.is_element() && n.tag_name().name() == name)
}

/// The fault in `xml`, if it is one.
pub fn fault(xml: &str) -> Option<Fault> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let f = find(&doc, "Fault")?;
    let code = f
        .descendants()
        .find(|n| n.tag_name().name() == "WSManFault")
        .and_then(|n| n.attribute("Code"))
        .map(str::to_string);
    let message = f
        .descendants()
        .find(|n| n.tag_name().name() == "Message")
        .and_then(|n| {
            let t: String = n
                .descendants()
                .filter(|d| d.is_text())
                .filter_map(|d| d.text())
                .collect();
            (!t.trim().is_empty()).then(|| t.trim().to_string())
        });
    let reason = f
        .descendants()
        .find(|n| n.tag_name().name() == "Text")
        .and_then(|n| n.text())
        .map(|t| t.trim().to_string());
    Some(Fault {
        code,
        reason: message
            .or(reason)
            .unwrap_or_else(|| "a SOAP fault without a reason".into()),
    })
}

/// The ShellId in a Create answer.
pub fn shell_id(xml: &str) -> Result<String, String> {
    let doc = parse(xml)?;
    find(&doc, "ShellId")
        .and_then(|n| n.text())
        .map(|t| t.trim().to_string())
        .or_else(|| {
            doc.descendants()
                .find(|n| {
                    n.tag_name().name() == "Selector" && n.attribute("Name") == Some("ShellId")
                })
                .and_then(|n| n.text())
                .map(|t| t.trim().to_string())
        })
        .ok_or_else(|| "the Create answer has no ShellId".to_string())
}

/// The CommandId in a Command answer.
pub fn command_id(xml: &str) -> Result<String, String> {
    let doc = parse(xml)?;
    find(&doc, "CommandId")
        .and_then(|n| n.text())
        .map(|t| t.trim().to_string())
        .ok_or_else(|| "the Command answer has no CommandId".to_string())
}

/// What one Receive answer holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Received {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// `Some` once the command is done.
    pub exit_code: Option<i32>,
}

pub fn received(xml: &str) -> Result<Received, String> {
    let doc = parse(xml)?;
    let mut r = Received::default();
    for s in doc
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "Stream")
    {
        let Some(text) = s.text() else { continue };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| format!("a stream is not base64 ({e})"))?;
        match s.attribute("Name") {
            Some("stdout") => r.stdout.extend(bytes),
            Some("stderr") => r.stderr.extend(bytes),
            _ => {}
        }
    }
    if let Some(state) = find(&doc, "CommandState") {
        if state.attribute("State") == Some(STATE_DONE) {
            let code = state
                .descendants()
                .find(|n| n.tag_name().name() == "ExitCode")
                .and_then(|n| n.text())
                .and_then(|t| t.trim().parse::<i64>().ok())
                .unwrap_or(0);
            // Windows reports exit codes as unsigned 32-bit numbers.
            r.exit_code = Some(code as i32);
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(shell: Option<&'a str>) -> Header<'a> {
        Header {
            to: "https://win1:5986/wsman",
            message_id: "00000000-0000-4000-8000-000000000001",
            operation_timeout: 20,
            shell_id: shell,
            options: &[],
        }
    }

    /// The elements MS-WSMV 3.1.4.1.x (and its examples in 4.2) require of each
    /// message are where Windows looks for them, read back by a real XML parser.
    #[test]
    fn messages_carry_what_ms_wsmv_requires() {
        let opts = [("WINRS_CODEPAGE", "65001")];
        let mut h = header(None);
        h.options = &opts;
        let create = create(&h);
        let doc = roxmltree::Document::parse(&create).unwrap();
        let text = |name: &str| {
            doc.descendants()
                .find(|n| n.tag_name().name() == name)
                .and_then(|n| n.text())
                .map(str::to_string)
        };
        assert_eq!(text("Action").as_deref(), Some(ACTION_CREATE));
        assert_eq!(text("ResourceURI").as_deref(), Some(RESOURCE_CMD));
        assert_eq!(text("InputStreams").as_deref(), Some("stdin"));
        assert_eq!(text("OutputStreams").as_deref(), Some("stdout stderr"));
        assert_eq!(text("Option").as_deref(), Some("65001"));
        assert_eq!(text("OperationTimeout").as_deref(), Some("PT20S"));

        let h = header(Some("SHELL-1"));
        for (xml, action) in [
            (
                command(&h, "powershell.exe -EncodedCommand AAA<&>"),
                ACTION_COMMAND,
            ),
            (send(&h, "CMD-1", b"hello", true), ACTION_SEND),
            (receive(&h, "CMD-1"), ACTION_RECEIVE),
            (signal(&h, "CMD-1"), ACTION_SIGNAL),
            (delete(&h), ACTION_DELETE),
        ] {
            let doc = roxmltree::Document::parse(&xml).unwrap();
            let get = |name: &str| {
                doc.descendants()
                    .find(|n| n.tag_name().name() == name)
                    .and_then(|n| n.text())
                    .map(str::to_string)
            };
            assert_eq!(get("Action").as_deref(), Some(action), "{xml}");
            // Every shell operation names its shell, by the cmd ResourceURI.
            assert_eq!(get("Selector").as_deref(), Some("SHELL-1"), "{xml}");
            assert_eq!(get("ResourceURI").as_deref(), Some(RESOURCE_CMD), "{xml}");
        }
        let c = command(&h, "a <b> & 'c'");
        let doc = roxmltree::Document::parse(&c).unwrap();
        let cmd = doc
            .descendants()
            .find(|n| n.tag_name().name() == "Command")
            .unwrap();
        assert_eq!(cmd.text(), Some("a <b> & 'c'"));
        let s = send(&h, "CMD-1", b"hello", true);
        assert!(s.contains(
            "<rsp:Stream Name=\"stdin\" CommandId=\"CMD-1\" End=\"true\">aGVsbG8=</rsp:Stream>"
        ));
    }

    /// Answers as MS-WSMV 4.2's examples show them (Windows' own namespaces).
    #[test]
    fn answers_are_read() {
        let created = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Header><a:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse</a:Action></s:Header><s:Body><x:ResourceCreated xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer"><a:Address>http://win1:5985/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</w:ResourceURI><w:SelectorSet><w:Selector Name="ShellId">9E0B5A5C-8F2B-4A6A-B2B2-1C0F0B2B1A00</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated><rsp:Shell><rsp:ShellId>9E0B5A5C-8F2B-4A6A-B2B2-1C0F0B2B1A00</rsp:ShellId></rsp:Shell></s:Body></s:Envelope>"#;
        assert_eq!(
            shell_id(created).unwrap(),
            "9E0B5A5C-8F2B-4A6A-B2B2-1C0F0B2B1A00"
        );
        let command = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Body><rsp:CommandResponse><rsp:CommandId>772B44EA-3AD3-4D58-8B47-B1F1C3F1CBE5</rsp:CommandId></rsp:CommandResponse></s:Body></s:Envelope>"#;
        assert_eq!(
            command_id(command).unwrap(),
            "772B44EA-3AD3-4D58-8B47-B1F1C3F1CBE5"
        );
        let running = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Body><rsp:ReceiveResponse><rsp:Stream Name="stdout" CommandId="C">aGVsbG8NCg==</rsp:Stream><rsp:Stream Name="stderr" CommandId="C">b29wcw==</rsp:Stream><rsp:CommandState CommandId="C" State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running"/></rsp:ReceiveResponse></s:Body></s:Envelope>"#;
        let r = received(running).unwrap();
        assert_eq!(r.stdout, b"hello\r\n");
        assert_eq!(r.stderr, b"oops");
        assert_eq!(r.exit_code, None);
        let done = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Body><rsp:ReceiveResponse><rsp:Stream Name="stdout" CommandId="C" End="true"></rsp:Stream><rsp:CommandState CommandId="C" State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"><rsp:ExitCode>4294967295</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse></s:Body></s:Envelope>"#;
        assert_eq!(received(done).unwrap().exit_code, Some(-1));
        let timeout = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"><s:Body><s:Fault><s:Code><s:Value>s:Receiver</s:Value></s:Code><s:Reason><s:Text xml:lang="en-US">The WS-Management service cannot complete the operation within the time specified in OperationTimeout.</s:Text></s:Reason><s:Detail><f:WSManFault Code="2150858793" Machine="win1"><f:Message>The operation timed out.</f:Message></f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>"#;
        let f = fault(timeout).unwrap();
        assert_eq!(f.code.as_deref(), Some(FAULT_TIMED_OUT));
        assert_eq!(f.reason, "The operation timed out.");
        assert_eq!(fault(done), None);
    }
}
